// The benchmark's single-threaded webhook receiver (examples/bench.rs --receiver node):
// the same contract as examples/receiver.rs, on node's http module alone.
// Binds 127.0.0.1:0 and prints `listening ADDR` on its first line; answers 200
// to every POST and counts it; `GET /stats` answers {"received": N}. With
// --record-times, each request's webhook-id and arrival time (Unix
// nanoseconds, the system clock at microsecond precision) are kept, and
// `GET /times` answers them as `id nanos` lines.
const http = require('http');

const recordTimes = process.argv.includes('--record-times');
let received = 0;
const times = [];

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.end(`{"received": ${received}}`);
    return;
  }
  if (req.method === 'GET' && req.url === '/times') {
    res.end(times.map(([id, ns]) => `${id} ${ns}\n`).join(''));
    return;
  }
  if (recordTimes) {
    // performance.timeOrigin + now(): Unix milliseconds with a fraction.
    const ns = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
    const id = req.headers['webhook-id'];
    if (id) times.push([id, ns]);
  }
  received += 1;
  req.resume();
  req.on('end', () => res.end('ok'));
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  const { address, port } = server.address();
  console.log(`listening ${address}:${port}`);
});
