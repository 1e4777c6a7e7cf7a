//! The repository's `config.toml`: every key of every section, each at its built-in default.

#[test]
fn the_repository_config_toml_lists_every_key_at_its_default() {
    let text = include_str!("../../config.toml");
    let file: toml::Table = text.parse().expect("config.toml parses");
    let defaults: toml::Table = tailhook::Config::default().redacted_toml().parse().unwrap();
    for (section, keys) in &defaults {
        let Some(keys) = keys.as_table() else { continue };
        let documented = file.get(section).and_then(|s| s.as_table()).unwrap_or_else(|| panic!("[{section}] missing"));
        for key in keys.keys() {
            assert!(documented.contains_key(key), "config.toml lacks {section}.{key}");
        }
    }
    let parsed = tailhook::Config::from_toml(text).expect("config.toml is valid");
    assert_eq!(parsed.redacted_toml(), tailhook::Config::default().redacted_toml(), "config.toml shows the defaults");
}

/// docs/reference.md names every configuration key and every metric the
/// code has (a key or metric added without documenting it fails here).
#[test]
fn the_reference_names_every_config_key_and_metric() {
    let reference = include_str!("../../docs/reference.md");
    let defaults: toml::Table = tailhook::Config::default().redacted_toml().parse().unwrap();
    let mut keys = 0;
    for (section, table) in &defaults {
        for key in table.as_table().expect("every key lives in a section").keys() {
            let name = format!("`{section}.{key}`");
            assert!(reference.contains(&name), "docs/reference.md lacks {name}");
            keys += 1;
        }
    }
    // Families with no series are not listed: give each one a series.
    let m = tailhook::metrics::Metrics::new();
    m.attempt("e", Some("timeout"), "retrying", 0.1);
    m.database_error("claim");
    let _in_flight = m.in_flight("e");
    m.claim_duration.get_or_create(&vec![("claim", "due".into())]).observe(0.1);
    m.retention_deleted.get_or_create(&vec![("table", "deliveries".into())]).inc();
    let gauges = tailhook::metrics::Gauges {
        pending: vec![("e".into(), 1)],
        states: vec!["active".into()],
        ..Default::default()
    };
    m.set_gauges(&gauges);
    let exposition = m.encode();
    let mut metrics = 0;
    for line in exposition.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        let exposed = if kind == "counter" { format!("`{name}_total`") } else { format!("`{name}`") };
        assert!(reference.contains(&exposed), "docs/reference.md lacks {exposed}");
        metrics += 1;
    }
    assert!(keys > 30 && metrics > 12, "{keys} keys, {metrics} metrics");
}
