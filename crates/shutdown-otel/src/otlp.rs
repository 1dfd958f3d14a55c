//! OTLP over HTTP (protobuf) with a small blocking client, so a node needs no HTTP stack or async
//! runtime of the exporter's choosing.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;

/// A blocking HTTP client for the exporter (its calls run on the exporting thread).
#[derive(Debug)]
struct Ureq(ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for Ureq {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, body.to_vec());
        let response = self.0.run(request)?;
        let status = response.status();
        let body = response.into_body().read_to_vec()?;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}

/// A tracer provider exporting to the OTLP/HTTP endpoint `endpoint` (e.g.
/// `http://otel-collector:4318/v1/traces`), in batches, each request bounded by 2 s. Plain HTTP:
/// put a collector beside the node for TLS.
pub fn otlp_provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    let timeout = Duration::from_secs(2);
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(Ureq(agent))
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter for {endpoint}: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build())
}
