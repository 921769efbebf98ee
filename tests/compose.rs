//! The Docker demo without Docker: docker-compose.yml, the Dockerfile and every file they use
//! are checked here, since no Docker engine runs on the build machines. The compose file is
//! parsed as YAML; images, ports, mounted files, profiles, the sluice configurations (with the
//! real config loader), the Prometheus scrape targets and the Grafana dashboard's metric names
//! are checked against the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use sluice::config::Config;

/// The metric names the daemon exports (the shared list of metric names; histograms are listed
/// by their base name).
const METRIC_NAMES: &[&str] = &[
    "sluice_events_total",
    "sluice_event_bytes_total",
    "sluice_sink_events_total",
    "sluice_sink_bytes_total",
    "sluice_sink_write_seconds",
    "sluice_sink_commit_latency_seconds",
    "sluice_sink_retries_total",
    "sluice_sink_dead_letters_total",
    "sluice_sink_queue_batches",
    "sluice_replication_lag_bytes",
    "sluice_replication_lag_seconds",
    "sluice_confirmed_lsn",
    "sluice_source_spill_full",
    "sluice_source_spill_full_retries_total",
    "sluice_snapshot_rows_total",
    "sluice_snapshot_rows_estimated",
    "sluice_snapshot_chunks_done",
    "sluice_snapshot_chunks_total",
    "sluice_paused",
    "sluice_up",
];

/// The `[http]` keys of the shared HTTP endpoint.
const HTTP_KEYS: &[&str] = &["listen", "enabled", "admin_token"];

/// The profiles the README's walk-through uses.
const PROFILES: &[&str] = &["full", "monitoring"];

/// Services that run without a profile: the default `docker compose up`.
const DEFAULT_SERVICES: &[&str] = &["postgres", "loadgen", "sluice"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_file(path: &Path) -> Yaml {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn services() -> BTreeMap<String, Yaml> {
    let compose = yaml_file(&repo().join("docker-compose.yml"));
    let services = compose["services"]
        .as_mapping()
        .expect("docker-compose.yml has a services mapping");
    services
        .iter()
        .map(|(name, service)| {
            let name = name.as_str().expect("service names are strings").to_owned();
            (name, service.clone())
        })
        .collect()
}

/// A sequence of strings (an absent key is empty).
fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|i| yaml_scalar(i).expect("a scalar list item"))
                .collect()
        })
        .unwrap_or_default()
}

fn yaml_scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `(host path, container path)` of every bind mount, in short or long syntax.
fn bind_mounts(service: &Yaml) -> Vec<(String, String)> {
    let Some(volumes) = service["volumes"].as_sequence() else {
        return Vec::new();
    };
    volumes
        .iter()
        .filter_map(|v| match v {
            Yaml::String(short) => {
                let mut parts = short.split(':');
                let source = parts.next()?.to_owned();
                let target = parts.next()?.to_owned();
                // A named volume is no file of the repository.
                source.starts_with(['.', '/']).then_some((source, target))
            }
            long => (long["type"].as_str() == Some("bind")).then(|| {
                let source = long["source"].as_str().expect("bind source").to_owned();
                let target = long["target"].as_str().expect("bind target").to_owned();
                (source, target)
            }),
        })
        .collect()
}

/// `(host port, container port)` of every published port.
fn published_ports(service: &Yaml) -> Vec<(u16, u16)> {
    strings(&service["ports"])
        .iter()
        .map(|spec| {
            let parts: Vec<&str> = spec.split(':').collect();
            let port = |text: &str| -> u16 {
                let port: u16 = text
                    .parse()
                    .unwrap_or_else(|_| panic!("port {text:?} of {spec:?} is not a number"));
                assert!(port > 0, "port 0 in {spec:?}");
                port
            };
            match parts.as_slice() {
                [host, container] | [_, host, container] => (port(host), port(container)),
                _ => panic!("publish ports as \"HOST:CONTAINER\", not {spec:?}"),
            }
        })
        .collect()
}

/// The service's environment as `(name, value)` pairs (mapping or `NAME=value` list).
fn environment(service: &Yaml) -> Vec<(String, String)> {
    match &service["environment"] {
        Yaml::Mapping(map) => map
            .iter()
            .map(|(k, v)| {
                let key = k.as_str().expect("variable name").to_owned();
                (key, yaml_scalar(v).unwrap_or_default())
            })
            .collect(),
        list => strings(list)
            .iter()
            .map(|item| {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
    }
}

/// The services running the sluice image: built from the repository's Dockerfile.
fn sluice_services() -> BTreeMap<String, Yaml> {
    services()
        .into_iter()
        .filter(|(_, s)| !s["build"].is_null())
        .collect()
}

/// The config file a sluice service runs: `--config` of its command, else the image's default.
fn config_in_container(service: &Yaml) -> Option<String> {
    let command = strings(&service["command"]);
    if command.first().map(String::as_str) == Some("registry") {
        return None;
    }
    let at = command.iter().position(|a| a == "--config" || a == "-c");
    Some(at.map_or_else(
        || "/etc/sluice/sluice.toml".to_owned(),
        |i| command[i + 1].clone(),
    ))
}

/// The repository file behind a container path: a bind mount, or the image's own copy of
/// docker/sluice.toml.
fn repo_file_for(service: &Yaml, container_path: &str) -> PathBuf {
    bind_mounts(service)
        .into_iter()
        .find(|(_, target)| target == container_path)
        .map(|(source, _)| repo().join(source))
        .unwrap_or_else(|| {
            assert_eq!(
                container_path, "/etc/sluice/sluice.toml",
                "{container_path} is neither mounted nor in the image"
            );
            repo().join("docker/sluice.toml")
        })
}

#[test]
fn every_compose_service_runs_a_pinned_image_or_a_dockerfile_of_the_repository() {
    let services = services();
    assert!(!services.is_empty());
    for (name, service) in &services {
        if let Some(build) = service["build"].as_mapping() {
            let context = repo().join(build["context"].as_str().unwrap_or("."));
            let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
            assert!(
                context.join(dockerfile).is_file(),
                "{name}: {dockerfile} missing in {}",
                context.display()
            );
            continue;
        }
        let image = service["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has neither image nor build"));
        let tag = image
            .rsplit('/')
            .next()
            .and_then(|last| last.split_once(':'));
        match tag {
            Some((_, tag)) => assert!(
                !tag.is_empty() && tag != "latest",
                "{name}: pin {image} to a version"
            ),
            None => panic!("{name}: {image} has no tag; pin it to a version"),
        }
    }
}

#[test]
fn compose_host_ports_are_valid_and_unique() {
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    for (name, service) in services() {
        for (host, _) in published_ports(&service) {
            if let Some(other) = seen.insert(host, name.clone()) {
                panic!("host port {host} is published by both {other} and {name}");
            }
        }
    }
    assert!(
        seen.contains_key(&5432),
        "the source PostgreSQL is reachable"
    );
}

#[test]
fn every_file_mounted_into_a_compose_service_exists_in_the_repository() {
    let mut mounted = 0;
    for (name, service) in services() {
        for (source, target) in bind_mounts(&service) {
            let path = repo().join(&source);
            assert!(
                path.exists(),
                "{name} mounts {source} at {target}, which does not exist"
            );
            mounted += 1;
        }
    }
    assert!(mounted >= 6, "only {mounted} mounts found");
}

#[test]
fn the_compose_profiles_add_the_full_pipeline_and_monitoring_to_the_default_services() {
    let services = services();
    let mut profiles = BTreeSet::new();
    for (name, service) in &services {
        let own = strings(&service["profiles"]);
        if own.is_empty() {
            assert!(
                DEFAULT_SERVICES.contains(&name.as_str()),
                "{name} runs without a profile; the README's default demo does not list it"
            );
        }
        profiles.extend(own);
    }
    let expected: BTreeSet<String> = PROFILES.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(profiles, expected);
    for name in DEFAULT_SERVICES {
        assert!(
            strings(&services[*name]["profiles"]).is_empty(),
            "{name} has a profile"
        );
    }
    for (profile, needed) in [
        (
            "full",
            &[
                "kafka",
                "registry",
                "opensearch",
                "warehouse",
                "sluice-full",
            ][..],
        ),
        ("monitoring", &["prometheus", "grafana"][..]),
    ] {
        for name in needed {
            assert!(
                strings(&services[*name]["profiles"]).contains(&profile.to_owned()),
                "{name} is in profile {profile}"
            );
        }
    }
}

/// Whether this build's config loader knows `[http]`.
fn loader_knows_http() -> bool {
    let probe = "[pipeline]\nname = 'p'\n[source]\nconnection = 'postgres://u@h/db'\n\
                 [[sink]]\nname = 's'\ntype = 'memory'\n[http]\nlisten = '127.0.0.1:0'\n";
    match Config::from_toml_str(probe, std::iter::empty()) {
        Ok(_) => true,
        Err(problems) => !problems.0.iter().any(|p| p.key == "http"),
    }
}

/// Validate a sluice config of the demo with the real loader, with the service's environment
/// as overrides, and return its `[http] listen` address.
fn validate_sluice_config(path: &Path, env: Vec<(String, String)>) -> SocketAddr {
    let text = read(path);
    let mut document: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let http = document
        .get("http")
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_else(|| panic!("{} has no [http] table", path.display()));
    for key in http.keys() {
        assert!(
            HTTP_KEYS.contains(&key.as_str()),
            "{}: unknown key http.{key}",
            path.display()
        );
    }
    let listen: SocketAddr = http["listen"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{}: http.listen is not an address", path.display()));
    if !loader_knows_http() {
        // This build has no [http] yet: its keys were checked above, the rest goes to the
        // loader.
        eprintln!("the config loader does not know [http]; validating the rest");
        document.remove("http");
    }
    let checked = toml::to_string(&document).expect("re-serialize the config");
    Config::from_toml_str(&checked, env)
        .unwrap_or_else(|problems| panic!("{}:\n{problems}", path.display()));
    listen
}

#[test]
fn the_sluice_configs_of_the_compose_demo_pass_the_config_loader() {
    let mut checked = 0;
    for (name, service) in sluice_services() {
        let Some(container_path) = config_in_container(&service) else {
            continue;
        };
        let file = repo_file_for(&service, &container_path);
        // The full pipeline needs the sinks the image is built with.
        let full = file.ends_with("sluice-full.toml");
        if full
            && !cfg!(all(
                feature = "sink-kafka",
                feature = "sink-search",
                feature = "sink-postgres"
            ))
        {
            eprintln!("{name}: skipped, this build lacks the kafka, search or postgres sink");
            continue;
        }
        let listen = validate_sluice_config(&file, environment(&service));
        let container_ports: Vec<u16> = published_ports(&service).iter().map(|p| p.1).collect();
        assert!(
            container_ports.contains(&listen.port()),
            "{name} listens on {listen} but publishes {container_ports:?}"
        );
        assert!(
            listen.ip().is_unspecified(),
            "{name}: listen on 0.0.0.0 inside a container, not {listen}"
        );
        checked += 1;
    }
    assert!(checked >= 1, "no sluice service config was checked");
}

#[test]
fn prometheus_scrapes_every_sluice_pipeline_on_its_http_port() {
    let services = services();
    let prometheus = &services["prometheus"];
    let mounts = bind_mounts(prometheus);
    let (source, _) = mounts
        .iter()
        .find(|(_, target)| target == "/etc/prometheus/prometheus.yml")
        .expect("prometheus.yml is mounted");
    let config = yaml_file(&repo().join(source));
    let mut targets = BTreeSet::new();
    for job in config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        for group in job["static_configs"].as_sequence().expect("static_configs") {
            targets.extend(strings(&group["targets"]));
        }
    }
    for (name, service) in sluice_services() {
        let Some(container_path) = config_in_container(&service) else {
            continue;
        };
        let text = read(&repo_file_for(&service, &container_path));
        let document: toml::Table = text.parse().expect("valid toml");
        let listen: SocketAddr = document["http"]["listen"]
            .as_str()
            .and_then(|l| l.parse().ok())
            .expect("http.listen");
        let target = format!("{name}:{}", listen.port());
        assert!(
            targets.contains(&target),
            "{target} missing from {targets:?}"
        );
    }
    for target in &targets {
        let host = target.split(':').next().unwrap_or_default();
        assert!(services.contains_key(host), "{target} is no service");
    }
}

/// The files under a container directory that a service mounts from the repository.
fn mounted_dir(service: &Yaml, container_dir: &str) -> PathBuf {
    let (source, _) = bind_mounts(service)
        .into_iter()
        .find(|(_, target)| target == container_dir)
        .unwrap_or_else(|| panic!("{container_dir} is not mounted"));
    repo().join(source)
}

#[test]
fn grafana_is_provisioned_with_prometheus_and_the_mounted_dashboards() {
    let services = services();
    let grafana = &services["grafana"];
    let provisioning = mounted_dir(grafana, "/etc/grafana/provisioning");
    let datasources = yaml_file(&provisioning.join("datasources/prometheus.yml"));
    let source = &datasources["datasources"][0];
    assert_eq!(source["type"].as_str(), Some("prometheus"));
    let url = source["url"].as_str().expect("datasource url");
    let port = published_ports(&services["prometheus"])[0].1;
    assert_eq!(url, format!("http://prometheus:{port}"));

    let providers = yaml_file(&provisioning.join("dashboards/sluice.yml"));
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("dashboard provider path");
    let dashboards = mounted_dir(grafana, path);
    let json_files: Vec<PathBuf> = std::fs::read_dir(&dashboards)
        .expect("dashboards directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(
        !json_files.is_empty(),
        "no dashboard in {}",
        dashboards.display()
    );
    let uid = source["uid"].as_str().expect("datasource uid");
    for file in json_files {
        let dashboard: Json = serde_json::from_str(&read(&file)).expect("dashboard JSON");
        for panel in dashboard["panels"].as_array().expect("panels") {
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(panel["datasource"]["uid"], uid, "{}", panel["title"]);
        }
    }
}

/// Every `sluice_*` name in a PromQL expression, histogram series suffixes removed.
fn metric_names_in(expr: &str) -> Vec<String> {
    let pattern = regex::Regex::new(r"sluice_[a-z_]+").expect("pattern");
    pattern
        .find_iter(expr)
        .map(|m| {
            let name = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    METRIC_NAMES.contains(&base).then(|| base.to_owned())
                })
                .unwrap_or_else(|| name.to_owned())
        })
        .collect()
}

#[test]
fn the_grafana_dashboard_charts_every_exported_metric_and_no_other() {
    let file = repo().join("docker/grafana/dashboards/sluice.json");
    let dashboard: Json = serde_json::from_str(&read(&file)).expect("dashboard JSON");
    assert_eq!(dashboard["uid"], "sluice");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            for name in metric_names_in(expr) {
                assert!(
                    METRIC_NAMES.contains(&name.as_str()),
                    "panel {} queries {name}, which sluice does not export",
                    panel["title"]
                );
                used.insert(name);
            }
        }
    }
    let unused: Vec<&&str> = METRIC_NAMES
        .iter()
        .filter(|m| !used.contains(**m))
        .collect();
    assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
}

#[test]
fn the_dockerfile_builds_in_its_own_stage_and_runs_as_a_non_root_user_checking_health() {
    let dockerfile = read(&repo().join("docker/Dockerfile"));
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build");
    assert!(
        instructions[stages[0]].contains(" AS "),
        "the build stage is named"
    );
    let runtime = &instructions[*stages.last().expect("a stage")..];
    assert!(
        runtime.iter().any(|l| l.starts_with("COPY --from=")),
        "the runtime stage takes the binary from the build stage"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets a USER");
    assert!(
        !matches!(user.trim(), "root" | "0" | "0:0"),
        "runs as {user}"
    );
    let healthcheck = dockerfile
        .split("HEALTHCHECK")
        .nth(1)
        .expect("a HEALTHCHECK")
        .split("\nENTRYPOINT")
        .next()
        .unwrap_or_default();
    let image_config: toml::Table = read(&repo().join("docker/sluice.toml")).parse().unwrap();
    let listen: SocketAddr = image_config["http"]["listen"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .expect("http.listen");
    let url = format!("http://127.0.0.1:{}/health", listen.port());
    assert!(healthcheck.contains(&url), "the health check asks {url}");
}
