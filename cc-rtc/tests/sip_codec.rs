//! Property tests of the SIP codec: printing then parsing gives the message back, and no
//! input makes the parser panic.

use cc_core::{Error, Vendor};
use cc_rtc::sip::{DigestAuthorization, DigestChallenge, Method, SipCodec, SipMessage, StartLine};
use proptest::prelude::*;

fn codec() -> SipCodec {
    SipCodec::new(Vendor::Expertflow)
}

/// Header values as they appear in practice: printable ASCII and some UTF-8, no line
/// breaks, no surrounding blanks (the parser trims them).
fn value() -> impl Strategy<Value = String> {
    "[ -~äéü]{0,40}".prop_map(|s| s.trim().to_owned())
}

fn extra_header() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        Just("X-Customer-Name".to_owned()),
        Just("X-Agent-Extension".to_owned()),
        Just("X-Calltype".to_owned()),
        Just("User-Agent".to_owned()),
        Just("Allow".to_owned()),
        Just("Supported".to_owned()),
        Just("Record-Route".to_owned()),
        Just("Reason".to_owned()),
        Just("WWW-Authenticate".to_owned()),
        Just("Max-Forwards".to_owned()),
        "X-[A-Za-z][A-Za-z0-9-]{0,15}",
    ];
    (name, value())
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(Method::ALL.to_vec())
}

fn start() -> impl Strategy<Value = (StartLine, Method)> {
    prop_oneof![
        (
            method(),
            "sip:[a-z0-9]{1,8}@[a-z0-9.]{1,12}(;transport=wss)?"
        )
            .prop_map(|(m, uri)| (
                StartLine::Request {
                    method: m.clone(),
                    uri
                },
                m
            )),
        (100u16..700, "[A-Za-z_ ]{0,20}", method()).prop_map(|(status, reason, m)| (
            StartLine::Response {
                status,
                reason: reason.trim().to_owned()
            },
            m
        )),
    ]
}

fn message() -> impl Strategy<Value = SipMessage> {
    (
        start(),
        "[a-z0-9]{1,10}",
        1u32..100_000,
        prop::collection::vec(extra_header(), 0..8),
        prop_oneof![Just(String::new()), "[ -~\r\n]{1,200}"],
        any::<bool>(),
    )
        .prop_map(|((start, cseq_method), tag, cseq, extra, body, sdp)| {
            let mut headers = vec![
                (
                    "Via".to_owned(),
                    format!("SIP/2.0/WSS {tag}.invalid;branch=z9hG4bK{tag}"),
                ),
                ("From".to_owned(), format!("<sip:1000@h>;tag={tag}")),
                ("To".to_owned(), "<sip:2000@h>".to_owned()),
                ("Call-ID".to_owned(), format!("{tag}@h")),
                ("CSeq".to_owned(), format!("{cseq} {cseq_method}")),
            ];
            headers.extend(extra);
            if sdp && !body.is_empty() {
                headers.push(("Content-Type".to_owned(), "application/sdp".to_owned()));
            }
            SipMessage {
                start,
                headers,
                body,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn parse_of_print_is_identity(m in message()) {
        let wire = codec().print(&m);
        let back = codec().parse(&wire).map_err(|e| TestCaseError::fail(format!("{e}\n{wire}")))?;
        prop_assert_eq!(back, m);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = codec().parse_bytes(&bytes);
    }

    #[test]
    fn mangled_messages_never_panic(m in message(), cut in 0usize..600, junk in "[ -~\r\n;<>\"]{0,20}") {
        let wire = codec().print(&m);
        let at = cut.min(wire.len());
        let mut mangled = wire.as_bytes()[..at].to_vec();
        mangled.extend_from_slice(junk.as_bytes());
        mangled.extend_from_slice(&wire.as_bytes()[at..]);
        if let Err(e) = codec().parse_bytes(&mangled) {
            prop_assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
        }
    }

    #[test]
    fn digest_answers_verify_only_with_the_right_password(
        user in "[a-z0-9.]{1,12}",
        realm in "[a-z0-9.]{1,16}",
        nonce in "[A-Za-z0-9+/=]{1,32}",
        password in "[ -!#-~]{1,20}",
        other in "[ -!#-~]{1,20}",
        uri in "sip:[a-z0-9]{1,8}@[a-z0-9.]{1,12}",
        nc in 1u32..1000,
        cnonce in "[a-z0-9]{1,16}",
        method in prop::sample::select(Method::ALL.to_vec()),
    ) {
        let offered = DigestChallenge::new(realm.clone(), nonce).header_value();
        let challenge = DigestChallenge::parse(&offered).unwrap();
        prop_assert_eq!(&challenge.realm, &realm);
        let header = challenge
            .authorization(&user, &password, &method, &uri, nc, &cnonce)
            .unwrap();
        let auth = DigestAuthorization::parse(&header).unwrap();
        prop_assert_eq!(&auth.username, &user);
        prop_assert_eq!(&auth.uri, &uri);
        prop_assert_eq!(auth.nonce_count(), Some(nc));
        prop_assert!(auth.verify(&method, &password));
        prop_assert_eq!(auth.verify(&method, &other), other == password);
    }
}
