//! The little SDP handling the TVox signalling needs (sans-IO, on the text): splitting the
//! candidates out of a description for trickle ICE, the ICE gather policy as a filter on
//! advertised candidates, and reading a description's direction (hold) and whether it
//! carries video. The media engine (`cc_rtc::media`) does the real negotiation.

use crate::wire::IceGatherPolicy;

/// One candidate taken out of a description, with where it belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The `a=mid` of its m-section, when the section has one.
    pub mid: Option<String>,
    /// The index of its m-section.
    pub m_line_index: u32,
    /// The candidate line without `a=` (`candidate:…`).
    pub candidate: String,
}

/// The direction of a description's media.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Both ways (`a=sendrecv`, or no attribute).
    SendRecv,
    /// The sender only sends (it holds the call).
    SendOnly,
    /// The sender only receives (the answer to a hold).
    RecvOnly,
    /// Nothing flows (a hold from both sides).
    Inactive,
}

fn lines(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
}

fn join(lines: Vec<&str>) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out
}

/// Splits `sdp` into the description without candidates (nor `a=end-of-candidates`) and
/// the candidates it carried, in order: what full trickle ICE sends apart.
pub fn split_candidates(sdp: &str) -> (String, Vec<Candidate>) {
    let mut kept = Vec::new();
    let mut found: Vec<(u32, String)> = Vec::new();
    let mut mids: Vec<Option<String>> = Vec::new();
    let mut section: Option<u32> = None;
    for l in lines(sdp) {
        if l.starts_with("m=") {
            section = Some(section.map_or(0, |i| i + 1));
            mids.push(None);
        }
        if let Some(mid) = l.strip_prefix("a=mid:")
            && let Some(last) = mids.last_mut()
        {
            *last = Some(mid.trim().to_owned());
        }
        if let Some(c) = l.strip_prefix("a=")
            && c.starts_with("candidate:")
        {
            found.push((section.unwrap_or(0), c.to_owned()));
            continue;
        }
        if l == "a=end-of-candidates" {
            continue;
        }
        kept.push(l);
    }
    let candidates = found
        .into_iter()
        .map(|(i, candidate)| Candidate {
            mid: mids.get(i as usize).cloned().flatten(),
            m_line_index: i,
            candidate,
        })
        .collect();
    (join(kept), candidates)
}

/// The candidate's type (`host`, `srflx`, `prflx`, `relay`), read after `typ`.
pub fn candidate_type(candidate: &str) -> Option<&str> {
    let mut words = candidate.split_whitespace();
    while let Some(w) = words.next() {
        if w == "typ" {
            return words.next();
        }
    }
    None
}

/// Whether the gather policy lets a local candidate be advertised: `All` every one,
/// `NoHost` all but host candidates, `Relay` relay candidates only.
pub fn allowed(candidate: &str, policy: Option<&IceGatherPolicy>) -> bool {
    match policy {
        Some(IceGatherPolicy::NoHost) => candidate_type(candidate) != Some("host"),
        Some(IceGatherPolicy::Relay) => candidate_type(candidate) == Some("relay"),
        _ => true,
    }
}

/// `sdp` without the candidates the gather policy does not advertise.
pub fn filter_candidates(sdp: &str, policy: Option<&IceGatherPolicy>) -> String {
    join(
        lines(sdp)
            .filter(|l| {
                l.strip_prefix("a=")
                    .filter(|c| c.starts_with("candidate:"))
                    .is_none_or(|c| allowed(c, policy))
            })
            .collect(),
    )
}

/// The direction of the first audio (else first) m-section; a session-level attribute
/// applies where a section has none.
pub fn direction(sdp: &str) -> Direction {
    let mut session: Option<Direction> = None;
    let mut current: Option<(bool, Option<Direction>)> = None;
    let mut first: Option<Option<Direction>> = None;
    let mut audio: Option<Option<Direction>> = None;
    let attr = |l: &str| match l {
        "a=sendrecv" => Some(Direction::SendRecv),
        "a=sendonly" => Some(Direction::SendOnly),
        "a=recvonly" => Some(Direction::RecvOnly),
        "a=inactive" => Some(Direction::Inactive),
        _ => None,
    };
    let mut close = |cur: Option<(bool, Option<Direction>)>| {
        if let Some((is_audio, d)) = cur {
            if first.is_none() {
                first = Some(d);
            }
            if is_audio && audio.is_none() {
                audio = Some(d);
            }
        }
    };
    for l in lines(sdp) {
        if l.starts_with("m=") {
            close(current.take());
            current = Some((l.starts_with("m=audio"), None));
        } else if let Some(d) = attr(l) {
            match &mut current {
                Some((_, slot)) => *slot = Some(d),
                None => session = Some(d),
            }
        }
    }
    close(current.take());
    audio
        .or(first)
        .flatten()
        .or(session)
        .unwrap_or(Direction::SendRecv)
}

/// Whether the description holds the call (`sendonly` or `inactive`).
pub fn is_hold(sdp: &str) -> bool {
    matches!(direction(sdp), Direction::SendOnly | Direction::Inactive)
}

/// Whether the description has a video m-section with a port (not rejected).
pub fn has_video(sdp: &str) -> bool {
    lines(sdp).any(|l| {
        l.strip_prefix("m=video ")
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|port| port != "0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n\
        a=candidate:2 1 udp 16777215 10.0.0.1 6000 typ relay raddr 1.2.3.4 rport 5\r\n\
        a=end-of-candidates\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n\
        a=candidate:3 1 udp 2130706431 127.0.0.1 5001 typ host\r\n";

    #[test]
    fn candidates_split_out_with_their_section() {
        let (rest, cands) = split_candidates(OFFER);
        assert!(!rest.contains("candidate"), "{rest}");
        assert!(rest.ends_with("a=sendonly\r\n"), "{rest}");
        assert_eq!(cands.len(), 3);
        assert_eq!(cands[0].mid.as_deref(), Some("0"));
        assert_eq!(cands[0].m_line_index, 0);
        assert!(cands[0].candidate.starts_with("candidate:1 "));
        assert_eq!(cands[2].mid.as_deref(), Some("1"));
        assert_eq!(cands[2].m_line_index, 1);
    }

    #[test]
    fn gather_policy_filters_advertised_candidates() {
        let (_, cands) = split_candidates(OFFER);
        assert_eq!(candidate_type(&cands[1].candidate), Some("relay"));
        assert!(allowed(&cands[0].candidate, None));
        assert!(!allowed(
            &cands[0].candidate,
            Some(&IceGatherPolicy::NoHost)
        ));
        assert!(allowed(&cands[1].candidate, Some(&IceGatherPolicy::Relay)));
        let relay = filter_candidates(OFFER, Some(&IceGatherPolicy::Relay));
        assert_eq!(relay.matches("a=candidate:").count(), 1);
        assert_eq!(filter_candidates(OFFER, Some(&IceGatherPolicy::All)), OFFER);
    }

    #[test]
    fn direction_of_the_audio_section() {
        assert_eq!(direction(OFFER), Direction::SendRecv);
        assert!(!is_hold(OFFER));
        let held = OFFER.replacen("a=sendrecv", "a=sendonly", 1);
        assert!(is_hold(&held));
        let inactive = OFFER.replacen("a=sendrecv", "a=inactive", 1);
        assert!(is_hold(&inactive));
        let answer = OFFER.replacen("a=sendrecv", "a=recvonly", 1);
        assert_eq!(direction(&answer), Direction::RecvOnly);
        // Session-level attribute, section without one.
        let session = "v=0\r\na=sendonly\r\nm=audio 9 RTP/AVP 0\r\n";
        assert_eq!(direction(session), Direction::SendOnly);
        assert_eq!(
            direction("v=0\r\nm=audio 9 RTP/AVP 0\r\n"),
            Direction::SendRecv
        );
    }

    #[test]
    fn video_needs_a_port() {
        assert!(has_video(OFFER));
        assert!(!has_video(&OFFER.replace("m=video 9", "m=video 0")));
        assert!(!has_video("v=0\r\nm=audio 9 RTP/AVP 0\r\n"));
    }
}
