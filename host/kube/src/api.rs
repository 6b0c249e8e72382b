//! How the spawner calls the Kubernetes API: requests that never reached the API server are retried, and the API
//! server's refusals become messages for the user. Shared by the spawner's writes and the progress event watch.

use std::time::{Duration, Instant};

use wasmhub_spawner::SpawnError;

/// Retries a request that failed before the API server answered (a dropped connection, a timeout), with
/// backoff from 0.1 s for up to 30 s, as KubeSpawner's `k8s_api_request_retry_timeout`. Answers, errors
/// included, are returned at once.
pub(crate) async fn with_retries<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delay = Duration::from_millis(100);
    loop {
        match request().await {
            Err(error) if !matches!(error, kube::Error::Api(_)) && Instant::now() + delay < deadline => {
                tracing::debug!(%error, "retrying a Kubernetes request");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// A failed request as the user reads it: what was being done and the API server's own message.
pub(crate) fn api_failure(what: &str, error: kube::Error) -> SpawnError {
    match error {
        kube::Error::Api(response) => SpawnError::Failed(format!("{what}: {} ({})", response.message, response.code)),
        other => SpawnError::Failed(format!("{what}: {other}")),
    }
}
