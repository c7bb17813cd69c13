//! Turning a [`Target`] into libtest-mimic trials, and running them.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use cc_core::{ErrorKind, Event, Feature};
use libtest_mimic::{Arguments, Conclusion, Failed, Trial};

use crate::harness::{Harness, Outcome};
use crate::scenarios::{self, SCENARIOS, Scenario};
use crate::snapshot::{self, SnapshotFrames, SnapshotSpec};
use crate::{Failure, Target};

/// What a planned trial does.
#[derive(Clone, Copy, Debug)]
pub enum TrialKind {
    /// Runs a scenario.
    Scenario(Scenario),
    /// Checks that the operation needing this missing feature returns `Error::Unsupported`.
    Unsupported(Feature),
}

/// One trial as planned from a target, before libtest-mimic runs it.
#[derive(Clone, Debug)]
pub struct PlannedTrial {
    /// `<vendor>[-<transport>]::<scenario>` or `…::unsupported_<feature>`.
    pub name: String,
    /// What it does.
    pub kind: TrialKind,
    /// The features the scenario needs that the target lacks; the trial is ignored when
    /// there are any.
    pub missing: Vec<Feature>,
}

impl PlannedTrial {
    /// Whether the trial is listed as ignored.
    pub fn ignored(&self) -> bool {
        !self.missing.is_empty()
    }
}

/// Plans the trials for `target`: every scenario (ignored when it needs a feature the
/// target lacks), then one negative trial per missing feature that some scenario needs
/// and that has a client operation to refuse.
pub fn plan(target: &Target) -> Vec<PlannedTrial> {
    let label = target.label();
    let caps = target.capabilities;
    let mut out = Vec::new();
    let mut missing_all: Vec<Feature> = Vec::new();
    for s in SCENARIOS {
        let missing: Vec<Feature> = s
            .needs
            .iter()
            .copied()
            .filter(|f| !caps.supports(*f))
            .collect();
        for f in &missing {
            if !missing_all.contains(f) {
                missing_all.push(*f);
            }
        }
        out.push(PlannedTrial {
            name: format!("{label}::{}", s.name),
            kind: TrialKind::Scenario(*s),
            missing,
        });
    }
    missing_all.sort();
    for f in missing_all {
        if scenarios::probe_exists(f) {
            out.push(PlannedTrial {
                name: format!("{label}::unsupported_{}", f.name()),
                kind: TrialKind::Unsupported(f),
                missing: Vec::new(),
            });
        }
    }
    out
}

/// The libtest-mimic trials for `target` (see [`plan`]). Ignored trials carry the kind
/// `needs <features>`, so the listing says why.
pub fn trials(target: &Target) -> Vec<Trial> {
    let target = Arc::new(target.clone());
    plan(&target)
        .into_iter()
        .map(|p| {
            let ignored = p.ignored();
            let kind = if ignored {
                let names: Vec<&str> = p.missing.iter().map(|f| f.name()).collect();
                format!("needs {}", names.join(", "))
            } else {
                match p.kind {
                    TrialKind::Scenario(_) => String::new(),
                    TrialKind::Unsupported(_) => "negative".to_owned(),
                }
            };
            let name = p.name.clone();
            let target = target.clone();
            Trial::test(p.name, move || execute(&target, &name, p.kind))
                .with_ignored_flag(ignored)
                .with_kind(kind)
        })
        .collect()
}

/// Runs the suite for one target with the process's test arguments, then exits.
/// Call it from the `main` of a `harness = false` test.
pub fn run(target: Target) -> ! {
    run_all(vec![target])
}

/// Runs the suite for several targets (one per transport, say), then exits.
pub fn run_all(targets: Vec<Target>) -> ! {
    run_with_args(&targets, &Arguments::from_args()).exit()
}

/// Runs the suite for `targets` with explicit arguments, returning the conclusion.
pub fn run_with_args(targets: &[Target], args: &Arguments) -> Conclusion {
    let all = targets.iter().flat_map(trials).collect();
    libtest_mimic::run(args, all)
}

/// Runs one trial: a fresh current-thread runtime, simulator and session; the body; the
/// final event checks; then the snapshot.
fn execute(target: &Target, name: &str, kind: TrialKind) -> Result<(), Failed> {
    let fail = |f: Failure| Failed::from(format!("{name}: {f}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("{name}: cannot build a runtime: {e}")))?;
    let scenario_name = match kind {
        TrialKind::Scenario(s) => s.name,
        TrialKind::Unsupported(_) => "unsupported",
    };
    let frames = rt.block_on(async {
        let body = async {
            let started = (target.start)()
                .await
                .map_err(|e| Failure::new(format!("step `start`: {e}")))?;
            let mut h = Harness::new(scenario_name, target, started);
            match kind {
                TrialKind::Scenario(s) => {
                    (s.run)(&mut h).await?;
                    final_checks(&mut h, s)?;
                    Ok(Some(h.frames()))
                }
                TrialKind::Unsupported(f) => {
                    scenarios::probe(&mut h, f).await?;
                    Ok(None)
                }
            }
        };
        match tokio::time::timeout(target.trial_timeout, body).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(format!(
                "the trial did not finish within {:?}",
                target.trial_timeout
            ))),
        }
    });
    // Stop the simulator, the session and the proxy before snapshotting.
    drop(rt);
    let frames = frames.map_err(fail)?;
    if let (Some(frames), TrialKind::Scenario(s)) = (frames, kind)
        && s.snapshot
        && target.snapshot_frames != SnapshotFrames::Off
    {
        let kept: Vec<_> = match target.snapshot_filter {
            Some(keep) => frames.into_iter().filter(keep).collect(),
            None => frames,
        };
        let doc = snapshot::normalize(&kept, target.snapshot_frames);
        let suffix = target.label();
        let spec = SnapshotSpec {
            dir: &target.snapshot_dir,
            name: s.name,
            suffix: &suffix,
            redactions: &target.redactions,
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            snapshot::assert_frames_snapshot(&spec, &doc);
        }))
        .map_err(|_| {
            Failed::from(format!(
                "{name}: the frames differ from {}/{}@{suffix}.snap (diff above; review \
                 with `cargo insta review` or accept with INSTA_UPDATE=always)",
                target.snapshot_dir.display(),
                s.name
            ))
        })?;
    }
    Ok(())
}

/// Checks every scenario shares: no protocol errors beyond what it provoked, no failed
/// messages, no lagged subscriber.
fn final_checks(h: &mut Harness, s: Scenario) -> Outcome {
    h.events.drain();
    let allowed = s.protocol_errors;
    let protocol = h
        .events
        .seen()
        .iter()
        .filter(|e| matches!(e, Event::Error(err) if err.kind() == ErrorKind::Protocol))
        .count();
    if protocol > allowed {
        return Err(h.events.failure(
            "end of scenario",
            &format!("{protocol} protocol error event(s), expected {allowed}"),
        ));
    }
    if h.events
        .seen()
        .iter()
        .any(|e| matches!(e, Event::MessageFailed { .. } | Event::Lagged { .. }))
    {
        return Err(h
            .events
            .failure("end of scenario", "a message failed or the stream lagged"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Started;
    use cc_core::{Capabilities, Vendor};

    fn target(caps: Capabilities) -> Target {
        Target::new(Vendor::Genesys, caps, "/nonexistent/snapshots", || async {
            Err::<Started, _>(cc_core::Error::closed(Vendor::Genesys, "simulator"))
        })
    }

    fn chat_only() -> Capabilities {
        Capabilities {
            chat: true,
            ..Capabilities::NONE
        }
    }

    #[test]
    fn trials_are_named_by_vendor_and_transport() {
        let names: Vec<String> = plan(&target(chat_only()))
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert!(
            names.contains(&"genesys::start_queue_join".to_owned()),
            "{names:?}"
        );
        let names: Vec<String> = plan(&target(chat_only()).transport("web-messaging"))
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert!(names.contains(&"genesys-web-messaging::start_queue_join".to_owned()));
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("genesys-web-messaging::"))
        );
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "trial names are unique");
    }

    #[test]
    fn scenarios_needing_missing_features_are_ignored_with_negative_trials() {
        let planned = plan(&target(chat_only()));
        let by_name = |n: &str| {
            planned
                .iter()
                .find(|p| p.name == format!("genesys::{n}"))
                .unwrap_or_else(|| panic!("no trial {n}"))
        };
        assert!(!by_name("messages_both_ways").ignored());
        assert!(by_name("typing_out").ignored());
        assert_eq!(by_name("typing_out").missing, vec![Feature::TypingOut]);
        assert!(by_name("resume_after_restart").ignored());
        // Negative trials for missing features with an operation to refuse ...
        for f in [
            "typing_out",
            "delivery_receipts",
            "read_receipts",
            "attachments",
            "token_refresh",
            "calls_audio",
            "calls_video",
        ] {
            let p = by_name(&format!("unsupported_{f}"));
            assert!(!p.ignored());
            assert!(matches!(p.kind, TrialKind::Unsupported(_)));
        }
        // ... and none for inbound-only ones, nor for features no scenario needs.
        for f in [
            "typing_in",
            "attachments_in",
            "idle_warning",
            "resume",
            "call_hold",
            "call_dtmf",
        ] {
            assert!(
                !planned
                    .iter()
                    .any(|p| p.name == format!("genesys::unsupported_{f}")),
                "unexpected negative trial for {f}"
            );
        }
    }

    #[test]
    fn a_full_target_has_nothing_ignored_and_no_negative_trials() {
        let mut caps = chat_only();
        for f in Feature::ALL {
            caps = set(caps, *f);
        }
        let planned = plan(&target(caps));
        assert!(planned.iter().all(|p| !p.ignored()));
        assert!(
            planned
                .iter()
                .all(|p| matches!(p.kind, TrialKind::Scenario(_)))
        );
        assert_eq!(planned.len(), SCENARIOS.len());
    }

    #[test]
    fn a_target_without_chat_gets_a_negative_chat_trial() {
        let planned = plan(&target(Capabilities::NONE));
        assert!(
            planned
                .iter()
                .any(|p| p.name == "genesys::unsupported_chat")
        );
        assert!(
            !planned
                .iter()
                .find(|p| p.name == "genesys::capabilities_match")
                .unwrap()
                .ignored()
        );
    }

    fn set(mut caps: Capabilities, f: Feature) -> Capabilities {
        // Every boolean field through its Feature, so the test follows the list.
        macro_rules! on {
            ($($field:ident => $v:ident),*) => {
                match f { $(Feature::$v => caps.$field = true,)* _ => {} }
            };
        }
        on!(chat => Chat, resume => Resume, typing_out => TypingOut, typing_in => TypingIn,
            delivery_receipts => DeliveryReceipts, read_receipts => ReadReceipts,
            attachments => Attachments, attachments_in => AttachmentsIn,
            token_refresh => TokenRefresh, idle_warning => IdleWarning,
            calls_audio => CallsAudio, calls_video => CallsVideo);
        caps
    }

    #[test]
    fn ignored_trials_say_what_they_need() {
        let t = trials(&target(chat_only()));
        let typing = t
            .iter()
            .find(|t| t.name() == "genesys::typing_out")
            .unwrap();
        assert!(typing.has_ignored_flag());
        assert_eq!(typing.kind(), "needs typing_out");
        let neg = t
            .iter()
            .find(|t| t.name() == "genesys::unsupported_typing_out")
            .unwrap();
        assert_eq!(neg.kind(), "negative");
    }

    #[test]
    fn a_failing_start_fails_the_trial_naming_it_and_ignored_ones_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("trials.log");
        let args = Arguments {
            test_threads: Some(1),
            logfile: Some(log.display().to_string()),
            ..Arguments::default()
        };
        let c = run_with_args(&[target(chat_only())], &args);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains(
                "genesys::messages_both_ways: step `start`: genesys: simulator is closed"
            ),
            "{text}"
        );
        let typing = text
            .lines()
            .find(|l| l.contains("genesys::typing_out "))
            .unwrap_or_default();
        assert!(typing.contains("[needs typing_out]"), "{typing}");
        assert!(typing.ends_with("ignored"), "{typing}");
        let planned = plan(&target(chat_only()));
        let ignored = planned.iter().filter(|p| p.ignored()).count() as u64;
        assert_eq!(c.num_ignored, ignored);
        assert_eq!(c.num_passed, 0);
        assert_eq!(c.num_failed, planned.len() as u64 - ignored);
    }

    #[test]
    fn execute_reports_the_start_error() {
        let t = target(chat_only());
        let err =
            execute(&t, "genesys::agent_ends", TrialKind::Scenario(SCENARIOS[0])).unwrap_err();
        let msg = err.message().unwrap();
        assert!(
            msg.starts_with("genesys::agent_ends: step `start`:"),
            "{msg}"
        );
        assert!(msg.contains("simulator is closed"), "{msg}");
    }
}
