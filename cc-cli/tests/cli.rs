//! The `cc-cli` binary, run as a user runs it.

use std::process::{Command, Output};

fn cc_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cc-cli"))
        .args(args)
        .output()
        .expect("run cc-cli")
}

#[test]
fn adapters_lists_every_vendor_with_its_state() {
    let out = cc_cli(&["adapters"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for vendor in ["expertflow", "tvox", "avaya", "genesys", "tetherfi"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{vendor} (")))
            .unwrap_or_else(|| panic!("no line for {vendor} in\n{text}"));
        // Built with every vendor feature: nothing is reported as switched off.
        assert!(!line.contains("not compiled in"), "{line}");
    }
}

#[test]
fn adapters_json_agrees_with_the_sdk_registry() {
    let out = cc_cli(&["adapters", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 5);
    let available: Vec<&str> = list
        .iter()
        .filter(|a| a["status"] == "available")
        .map(|a| a["vendor"].as_str().unwrap())
        .collect();
    let compiled: Vec<&str> = cc_sdk::adapters().iter().map(|e| e.vendor.key()).collect();
    assert_eq!(available, compiled);
    for adapter in list.iter().filter(|a| a["status"] == "available") {
        assert!(!adapter["transports"].as_array().unwrap().is_empty());
    }
}

#[test]
fn adapters_filters_by_vendor_and_rejects_an_unknown_one() {
    let out = cc_cli(&["adapters", "--vendor", "Tetherfi"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().filter(|l| !l.starts_with(' ')).count(), 1);
    assert!(text.starts_with("tetherfi (Tetherfi): "), "{text}");

    let out = cc_cli(&["adapters", "--vendor", "acme"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown vendor `acme`"), "{err}");
}
