//! `[tracing]`: where attempt spans are exported (OTLP/HTTP) and how they are sampled, with the `OTEL_*` variables applied.

use super::{invalid, positive, ConfigError};
use serde::{Deserialize, Serialize};

/// `[tracing]`: OpenTelemetry spans of attempts, claims and result writes,
/// exported over OTLP/HTTP. Off unless a collector is named here or in
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
/// Attempts carry `traceparent` either way (see `src/pipeline/trace.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// The collector's base URL (spans go to `<otlp_endpoint>/v1/traces`),
    /// as `OTEL_EXPORTER_OTLP_ENDPOINT`, which it overrides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<super::secret::CredentialUrl>,
    /// `service.name`; unset: `OTEL_SERVICE_NAME`, else `tailhook`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Share of new traces whose attempts are recorded (an event with a
    /// trace context follows its sampled flag); unset: `OTEL_TRACES_SAMPLER`
    /// and `OTEL_TRACES_SAMPLER_ARG`, else every attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_ratio: Option<f64>,
    /// Share of claims and result writes recorded (each a trace of its own).
    pub internal_sample_ratio: f64,
    /// Spans waiting to be exported at most; more are dropped and counted.
    pub queue_size: usize,
    /// How long one export may take before its spans are dropped.
    pub export_timeout_ms: u64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            sample_ratio: None,
            internal_sample_ratio: 0.01,
            queue_size: 4_096,
            export_timeout_ms: 10_000,
        }
    }
}

/// Whether a new trace is recorded: its parent's sampled flag (when
/// `parent_based` and the event has one), else `ratio` of trace ids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    pub parent_based: bool,
    pub ratio: f64,
}

/// `[tracing]` with the OpenTelemetry environment variables applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// Where spans are sent (`.../v1/traces`).
    pub traces_url: String,
    pub service_name: Option<String>,
    pub sampler: Sampler,
}

impl TracingConfig {
    /// The export settings, `None` when no collector is named (or
    /// `OTEL_SDK_DISABLED=true`); the error names the key or variable.
    pub fn resolve(&self) -> Result<Option<Tracing>, ConfigError> {
        self.resolve_with(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    pub(super) fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<Tracing>, ConfigError> {
        for (key, ratio) in [
            ("tracing.sample_ratio", self.sample_ratio),
            ("tracing.internal_sample_ratio", Some(self.internal_sample_ratio)),
        ] {
            if ratio.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                return Err(invalid(key, "must be between 0 and 1"));
            }
        }
        positive("tracing.queue_size", self.queue_size as u64)?;
        if self.queue_size > 1_000_000 {
            return Err(invalid("tracing.queue_size", "must be at most 1000000"));
        }
        positive("tracing.export_timeout_ms", self.export_timeout_ms)?;
        if self.export_timeout_ms > 60_000 {
            return Err(invalid("tracing.export_timeout_ms", "must be at most 60000"));
        }
        let base = |key: &str, url: &str| {
            let parsed = url::Url::parse(url.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| invalid(key, "must be an http:// or https:// URL such as http://127.0.0.1:4318"))?;
            Ok::<_, ConfigError>(format!("{}/v1/traces", parsed.as_str().trim_end_matches('/')))
        };
        let traces_url = match (
            &self.otlp_endpoint,
            env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _, _) if !url.expose().trim().is_empty() => base("tracing.otlp_endpoint", url.expose())?,
            (_, Some(full), _) => {
                let key = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
                base(key, &full)?;
                full.trim().to_owned()
            }
            (_, None, Some(url)) => base("OTEL_EXPORTER_OTLP_ENDPOINT", &url)?,
            _ => return Ok(None),
        };
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let sampler = match self.sample_ratio {
            Some(ratio) => Sampler { parent_based: true, ratio },
            None => {
                let arg = || -> Result<f64, ConfigError> {
                    match env("OTEL_TRACES_SAMPLER_ARG") {
                        None => Ok(1.0),
                        Some(a) => a
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|r| (0.0..=1.0).contains(r))
                            .ok_or_else(|| invalid("OTEL_TRACES_SAMPLER_ARG", "must be a ratio between 0 and 1")),
                    }
                };
                match env("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
                    None | Some("parentbased_always_on") => Sampler { parent_based: true, ratio: 1.0 },
                    Some("always_on") => Sampler { parent_based: false, ratio: 1.0 },
                    Some("always_off") => Sampler { parent_based: false, ratio: 0.0 },
                    Some("parentbased_always_off") => Sampler { parent_based: true, ratio: 0.0 },
                    Some("traceidratio") => Sampler { parent_based: false, ratio: arg()? },
                    Some("parentbased_traceidratio") => Sampler { parent_based: true, ratio: arg()? },
                    Some(other) => {
                        return Err(invalid(
                            "OTEL_TRACES_SAMPLER",
                            format!(
                                "`{other}` is not one of always_on, always_off, traceidratio, parentbased_always_on, \
                                 parentbased_always_off, parentbased_traceidratio"
                            ),
                        ))
                    }
                }
            }
        };
        let service_name = self.service_name.clone().filter(|s| !s.trim().is_empty());
        Ok(Some(Tracing { traces_url, service_name, sampler }))
    }
}
