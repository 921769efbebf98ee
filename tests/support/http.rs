//! The daemon's HTTP endpoint as the tests read it: a request's status and body, one sample of
//! `/metrics`, the `/status` document. An endpoint that cannot be reached answers status 0 (or
//! `None`), so tests poll it with [`super::wait_until`] while the daemon starts.

use std::time::Duration;

use sluice::metrics::text::find_sample;

/// Longest wait for one answer: the daemon answers from memory.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The client the `sluice` commands use to reach the daemon.
pub fn client() -> reqwest::Client {
    sluice::runtime::client::http_client().expect("http client")
}

/// Status and body; status 0 when the endpoint cannot be reached.
pub async fn request(builder: reqwest::RequestBuilder) -> (u16, String) {
    match builder.timeout(REQUEST_TIMEOUT).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// `GET base + path`: status and body.
pub async fn get(base: &str, path: &str) -> (u16, String) {
    request(client().get(format!("{base}{path}"))).await
}

/// One sample of `base`'s `/metrics`; `None` when absent or the endpoint is not up.
pub async fn metric(base: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (status, text) = get(base, "/metrics").await;
    (status == 200)
        .then(|| find_sample(&text, name, labels))
        .flatten()
}

/// `base`'s `/status` document; `None` when the endpoint is not up.
pub async fn status(base: &str) -> Option<serde_json::Value> {
    let (status, body) = get(base, "/status").await;
    (status == 200).then(|| serde_json::from_str(&body).expect("/status answers JSON"))
}
