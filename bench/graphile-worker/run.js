// The peer of tailhook's benchmark (examples/bench.rs): graphile-worker doing
// the same signed POST to the same receiver, tuned as its documentation's
// performance advice says (24 concurrent jobs, a local queue of 500, batched
// completion). Env: DATABASE_URL, TARGET (receiver URL), CONC (default 24),
// LOCALQ (local queue size, default 500, 0 = off), BATCH (completion batch
// delay in ms, default 0 = batched, -1 = off), SECRET (whsec_...).
const { run, Logger } = require('graphile-worker');
const http = require('http');
const crypto = require('crypto');

const CONC = +(process.env.CONC || 24);
const POOL = CONC + 1;
const LOCALQ = +(process.env.LOCALQ ?? 500);
const BATCH = +(process.env.BATCH ?? 0);
const target = new URL(process.env.TARGET);
const agent = new http.Agent({ keepAlive: true, maxSockets: CONC });
const secret = Buffer.from((process.env.SECRET || '').replace(/^whsec_/, ''), 'base64');

// Standard Webhooks: HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}".
function post(body, id) {
  const ts = Math.floor(Date.now() / 1000).toString();
  const sig = crypto.createHmac('sha256', secret).update(`${id}.${ts}.${body}`).digest('base64');
  return new Promise((resolve, reject) => {
    const req = http.request({
      agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST',
      headers: {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(body),
        'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': 'v1,' + sig,
      },
    }, res => {
      res.resume();
      res.on('end', () => (res.statusCode < 300 ? resolve() : reject(new Error('HTTP ' + res.statusCode))));
    });
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function main() {
  const worker = {
    concurrentJobs: CONC, maxPoolSize: POOL,
    ...(LOCALQ > 0 ? { localQueue: { size: LOCALQ } } : {}),
    ...(BATCH >= 0 ? { completeJobBatchDelay: BATCH, failJobBatchDelay: BATCH } : {}),
  };
  const runner = await run({
    connectionString: process.env.DATABASE_URL,
    concurrency: CONC, maxPoolSize: POOL, logger: new Logger(() => () => {}), noHandleSignals: false,
    preset: { worker },
    taskList: {
      deliver: async (payload, helpers) => {
        // The same envelope as tailhook sends.
        const body = JSON.stringify({ id: helpers.job.id, type: 'invoice.paid', timestamp: helpers.job.created_at, data: payload });
        await post(body, 'msg_' + helpers.job.id);
      },
    },
  });
  console.log(JSON.stringify({ started: true, pid: process.pid, CONC, POOL, LOCALQ, BATCH }));
  await runner.promise;
}
main().catch(e => { console.error(e); process.exit(1); });
