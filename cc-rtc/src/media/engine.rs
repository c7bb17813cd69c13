//! The engine behind a `MediaSession`: the str0m `Rtc`, the codecs and the devices, and the
//! task that drives them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_core::media::{CallStats, MediaDevices, VideoCodec, VideoFrame};
use cc_core::{Error, Result, Vendor};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, CodecExtra, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt, TelephoneEvent};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use super::{Conn, MediaConfig, MediaEvent, Shared, dtmf_char, dtmf_unsupported};
use crate::codec::{AudioCodec, AudioDecoder, AudioEncoder};
use crate::ice::TurnRelay;

/// Payload type of telephone-event at 8 kHz (next to G.711).
const PT_TELE_8K: u8 = 101;
/// Payload type of telephone-event at 48 kHz (next to Opus).
const PT_TELE_48K: u8 = 110;
/// How long one DTMF digit lasts.
const DTMF_DURATION: Duration = Duration::from_millis(100);
/// Pause between two DTMF digits (RFC 4733 asks for at least 50 ms).
const DTMF_GAP: Duration = Duration::from_millis(70);
/// The audio frame length.
const AUDIO_TICK: Duration = Duration::from_millis(20);

pub(crate) struct Engine {
    vendor: Vendor,
    config: MediaConfig,
    devices: MediaDevices,
    pub(crate) rtc: Rtc,
    pub(crate) relays: Vec<TurnRelay>,
    closed: bool,
    connected: bool,
    ice_disconnected: bool,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    pub(crate) stats: CallStats,
    pub(crate) audio_muted: bool,
    pub(crate) video_muted: bool,
    pub(crate) held_by_remote: bool,
    /// We hold the call (our last hold offer was `sendonly`).
    local_hold: bool,
    /// What a pending offer changed, to undo it when the far end refuses the offer.
    undo: Option<Undo>,
    /// The codec and payload type we send audio with, once negotiated.
    audio_tx: Option<(Pt, AudioEncoder)>,
    decoders: HashMap<AudioCodec, AudioDecoder>,
    /// The RTP clock of outgoing audio, in samples at the codec's rate.
    audio_rtp: u64,
    video_start: Instant,
    /// Random start of the video RTP clock (RFC 3550 §5.1).
    video_rtp_offset: u64,
    dtmf_queue: VecDeque<u8>,
    dtmf_next: Instant,
    /// RTP timestamp of the last telephone event received, to count each digit once.
    dtmf_last_rx: Option<u64>,
    /// The next str0m timeout.
    next_timeout: Instant,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    /// Events to report, collected while str0m is polled and sent at the end of `drain`
    /// (broadcast sends never block).
    pending_events: Vec<MediaEvent>,
}

impl Engine {
    pub(crate) fn new(vendor: Vendor, config: MediaConfig, devices: MediaDevices) -> Self {
        let now = Instant::now();
        let mut rtc_config = RtcConfig::new().clear_codecs();
        let codecs = rtc_config.codec_config();
        if config.opus {
            codecs.enable_opus(true, false);
        }
        codecs.enable_pcmu(true, false);
        codecs.enable_pcma(true, false);
        let events = FormatParams::parse_line("0-16");
        if config.opus {
            codecs.add_config(
                PT_TELE_48K.into(),
                None,
                Codec::Tele,
                Frequency::FORTY_EIGHT_KHZ,
                None,
                events,
            );
        }
        codecs.add_config(
            PT_TELE_8K.into(),
            None,
            Codec::Tele,
            Frequency::EIGHT_KHZ,
            None,
            events,
        );
        if config.video {
            codecs.enable_vp8(true);
            match devices.video_in.as_ref().map(|v| v.codec()) {
                Some(VideoCodec::Vp9) => codecs.enable_vp9(true),
                Some(VideoCodec::H264) => codecs.enable_h264(true),
                _ => {}
            }
        }
        let rtc = rtc_config.build(now);
        Engine {
            vendor,
            config,
            devices,
            rtc,
            relays: Vec::new(),
            closed: false,
            connected: false,
            ice_disconnected: false,
            audio_mid: None,
            video_mid: None,
            pending: None,
            stats: CallStats::default(),
            audio_muted: false,
            video_muted: false,
            held_by_remote: false,
            local_hold: false,
            undo: None,
            audio_tx: None,
            decoders: HashMap::new(),
            // Random starts of the RTP clocks (RFC 3550 §5.1).
            audio_rtp: u64::from(fastrand::u32(..)),
            video_start: now,
            video_rtp_offset: u64::from(fastrand::u32(..)),
            dtmf_queue: VecDeque::new(),
            dtmf_next: now,
            dtmf_last_rx: None,
            next_timeout: now,
            pcm: Vec::new(),
            payload: Vec::new(),
            pending_events: Vec::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            // RTCP BYE and DTLS close_notify, so the far end knows at once.
            if self.rtc.close().is_err() {
                self.rtc.disconnect();
            }
            self.dtmf_queue.clear();
        }
    }

    fn protocol(&self, frame: &'static str, reason: impl ToString) -> Error {
        Error::protocol(self.vendor, frame, reason.to_string())
    }

    pub(crate) fn create_offer(&mut self) -> Result<String> {
        if self.audio_mid.is_some() || self.pending.is_some() {
            return Err(Error::invalid(
                self.vendor,
                "create_offer",
                "the session already negotiated or offered media; use hold_offer for a re-offer",
            ));
        }
        let mut change = self.rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let video = self
            .config
            .video
            .then(|| change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None));
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| self.protocol("SDP offer", "str0m produced no offer"))?;
        self.audio_mid = Some(audio);
        self.video_mid = video;
        self.pending = Some(pending);
        self.undo = Some(Undo::Initial);
        Ok(offer.to_sdp_string())
    }

    pub(crate) fn apply_answer(&mut self, sdp: &str) -> Result<()> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| self.protocol("SDP answer", e))?;
        let pending = self.pending.take().ok_or_else(|| {
            Error::invalid(
                self.vendor,
                "SDP answer",
                "no offer of ours is waiting for an answer",
            )
        })?;
        self.undo = None;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| self.protocol("SDP answer", e))?;
        self.permit_candidates(sdp);
        self.after_negotiation();
        Ok(())
    }

    pub(crate) fn accept_offer(&mut self, sdp: &str) -> Result<String> {
        let mut offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| self.protocol("SDP offer", e))?;
        if offer.media_lines.is_empty() {
            return Err(self.protocol("SDP offer", "no m-line"));
        }
        // A glare of offers: ours loses (and is undone), the far end's wins.
        if self.pending.is_some() {
            self.rollback_offer();
        }
        // While we hold the call, we take nothing the far end sends: read its directions
        // without the receive part, so the answer keeps our hold (sendonly or inactive).
        if self.local_hold {
            offer = SdpOffer::from_sdp_string(&keep_local_hold(sdp))
                .map_err(|e| self.protocol("SDP offer", e))?;
        }
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| self.protocol("SDP offer", e))?;
        self.permit_candidates(sdp);
        self.after_negotiation();
        Ok(answer.to_sdp_string())
    }

    pub(crate) fn hold_offer(&mut self, on: bool) -> Result<String> {
        let audio = self
            .audio_mid
            .ok_or_else(|| Error::invalid(self.vendor, "hold", "no media negotiated yet"))?;
        if self.pending.is_some() {
            return Err(Error::invalid(
                self.vendor,
                "hold",
                "an offer is still waiting for its answer",
            ));
        }
        let dir = if on {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        let video = self.video_mid;
        let previous: Vec<(Mid, Direction)> = [Some(audio), video]
            .into_iter()
            .flatten()
            .filter_map(|mid| Some((mid, self.rtc.media(mid)?.direction())))
            .collect();
        let mut change = self.rtc.sdp_api();
        change.set_direction(audio, dir);
        if let Some(video) = video {
            change.set_direction(video, dir);
        }
        let Some((offer, pending)) = change.apply() else {
            return Err(Error::invalid(
                self.vendor,
                "hold",
                format!("the media already is {}", dir_name(dir)),
            ));
        };
        self.pending = Some(pending);
        self.undo = Some(Undo::Directions {
            local_hold: self.local_hold,
            previous,
        });
        self.local_hold = on;
        Ok(offer.to_sdp_string())
    }

    /// Asks the TURN servers to let the far end's candidates in before ICE checks arrive.
    fn permit_candidates(&mut self, sdp: &str) {
        if self.relays.is_empty() {
            return;
        }
        let now = Instant::now();
        for line in sdp.lines() {
            let Some(c) = line.trim().strip_prefix("a=") else {
                continue;
            };
            if let Ok(c) = Candidate::from_sdp_string(c) {
                for relay in &mut self.relays {
                    relay.permit(c.addr().ip(), now);
                }
            }
        }
    }

    /// Forgets the offer waiting for an answer (the far end refused it): the session goes back
    /// to what was negotiated before. Returns whether there was one.
    pub(crate) fn rollback_offer(&mut self) -> bool {
        if self.pending.take().is_none() {
            return false;
        }
        match self.undo.take() {
            Some(Undo::Initial) => {
                self.audio_mid = None;
                self.video_mid = None;
            }
            Some(Undo::Directions {
                local_hold,
                previous,
            }) => {
                // Setting a direction takes effect in the session at once; put it back.
                let mut change = self.rtc.sdp_api();
                for (mid, dir) in previous {
                    change.set_direction(mid, dir);
                }
                drop(change);
                self.local_hold = local_hold;
            }
            None => {}
        }
        true
    }

    pub(crate) fn add_remote_candidate(&mut self, line: &str) -> Result<()> {
        let line = line.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        let c = Candidate::from_sdp_string(line)
            .map_err(|e| Error::invalid(self.vendor, "candidate", e.to_string()))?;
        let addr = c.addr();
        self.rtc.add_remote_candidate(c);
        let now = Instant::now();
        for relay in &mut self.relays {
            relay.permit(addr.ip(), now);
        }
        Ok(())
    }

    pub(crate) fn queue_dtmf(&mut self, events: &[u8]) -> Result<()> {
        let Some((_, enc)) = &self.audio_tx else {
            return Err(Error::invalid(
                self.vendor,
                "dtmf",
                "no audio negotiated yet",
            ));
        };
        let rate = enc.codec().sample_rate();
        let mid = self.audio_mid.expect("audio_tx implies an audio mid");
        let tele_ok = self.rtc.writer(mid).is_some_and(|w| {
            w.payload_params()
                .any(|p| p.spec().codec == Codec::Tele && p.spec().clock_rate.get() == rate)
        });
        if !tele_ok {
            return Err(dtmf_unsupported(self.vendor));
        }
        if !self.audio_sending() {
            return Err(Error::invalid(
                self.vendor,
                "dtmf",
                "the far end holds the call: no media may be sent",
            ));
        }
        self.dtmf_queue.extend(events);
        Ok(())
    }

    fn note_media(&mut self, mid: Mid, kind: MediaKind) {
        match kind {
            MediaKind::Audio if self.audio_mid.is_none() => self.audio_mid = Some(mid),
            MediaKind::Video if self.video_mid.is_none() && self.config.video => {
                self.video_mid = Some(mid)
            }
            _ => {}
        }
    }

    /// After an offer/answer: pick the send codec, see whether the far end holds us.
    fn after_negotiation(&mut self) {
        let Some(mid) = self.audio_mid else {
            return;
        };
        let Some(media) = self.rtc.media(mid) else {
            return;
        };
        let dir = media.direction();
        let remote_pts: Vec<Pt> = media.remote_pts().to_vec();
        let held = !dir.is_sending();
        if held != self.held_by_remote {
            self.held_by_remote = held;
            self.pending_events.push(MediaEvent::RemoteHold(held));
        }
        let chosen = self.rtc.writer(mid).and_then(|w| {
            let params: Vec<_> = w.payload_params().cloned().collect();
            remote_pts.iter().find_map(|pt| {
                let p = params.iter().find(|p| p.pt() == *pt)?;
                let codec = audio_codec(p.spec().codec)?;
                codec.available().then_some((*pt, codec))
            })
        });
        match chosen {
            Some((pt, codec)) => {
                if self.audio_tx.as_ref().map(|(p, e)| (*p, e.codec())) != Some((pt, codec)) {
                    match AudioEncoder::new(codec) {
                        Ok(enc) => {
                            self.audio_tx = Some((pt, enc));
                            self.stats.audio_codec = Some(Arc::from(codec.name()));
                        }
                        Err(e) => warn!("audio encoder for {codec}: {e}"),
                    }
                }
            }
            None => debug!("no common audio codec with the far end"),
        }
    }

    fn audio_sending(&self) -> bool {
        self.audio_mid
            .and_then(|mid| self.rtc.media(mid))
            .is_some_and(|m| m.direction().is_sending())
    }

    fn video_sending(&self) -> bool {
        self.video_mid
            .and_then(|mid| self.rtc.media(mid))
            .is_some_and(|m| m.direction().is_sending())
    }

    /// One 20 ms audio frame: read, encode, write; and the next DTMF digit when it is due.
    fn audio_tick(&mut self, now: Instant) {
        let Some(mid) = self.audio_mid else {
            return;
        };
        let Some(codec) = self.audio_tx.as_ref().map(|(_, enc)| enc.codec()) else {
            return;
        };
        let rate = Frequency::new(codec.sample_rate()).expect("nonzero rate");
        let rtp_time = MediaTime::new(self.audio_rtp, rate);
        self.audio_rtp += codec.frame_samples() as u64;
        if !self.connected || self.closed || !self.audio_sending() {
            return;
        }
        let Some((pt, enc)) = self.audio_tx.as_mut() else {
            return;
        };
        let pt = *pt;
        self.payload.clear();
        let mut has_audio = false;
        if !self.audio_muted
            && let Some(source) = &self.devices.audio_in
        {
            self.pcm.clear();
            self.pcm.resize(codec.frame_samples(), 0);
            source.read_frame(codec.sample_rate(), &mut self.pcm);
            match enc.encode(&self.pcm, &mut self.payload) {
                Ok(()) => has_audio = true,
                Err(e) => warn!("audio encode: {e}"),
            }
        }
        let dtmf = if now >= self.dtmf_next {
            self.dtmf_queue.pop_front()
        } else {
            None
        };
        if !has_audio && dtmf.is_none() {
            return;
        }
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let writer = match dtmf {
            Some(event) => {
                self.dtmf_next = now + DTMF_DURATION + DTMF_GAP;
                writer.telephone_event(TelephoneEvent {
                    event,
                    end: true,
                    volume: 10,
                    duration: DTMF_DURATION,
                })
            }
            None => writer,
        };
        let data: &[u8] = if has_audio { &self.payload } else { &[] };
        match writer.write(pt, now, rtp_time, data.to_vec()) {
            Ok(()) if has_audio => self.stats.audio_packets_sent += 1,
            Ok(()) => {}
            Err(e) => warn!("audio write: {e}"),
        }
    }

    /// One video frame from the source, when video is negotiated and sent.
    fn video_tick(&mut self, now: Instant) {
        let Some(mid) = self.video_mid else {
            return;
        };
        if !self.connected || self.closed || self.video_muted || !self.video_sending() {
            return;
        }
        let Some(source) = self.devices.video_in.clone() else {
            return;
        };
        let Some(frame) = source.next_frame() else {
            return;
        };
        let want = video_codec_str0m(frame.codec);
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == want)
            .map(|p| p.pt())
        else {
            debug!(
                "video frame in {:?}, which the far end did not accept",
                frame.codec
            );
            return;
        };
        let elapsed = now.saturating_duration_since(self.video_start);
        let ticks = MediaTime::from(elapsed)
            .rebase(Frequency::NINETY_KHZ)
            .numer();
        let rtp_time = MediaTime::new(ticks + self.video_rtp_offset, Frequency::NINETY_KHZ);
        match writer.write(pt, now, rtp_time, frame.data) {
            Ok(()) => self.stats.video_frames_sent += 1,
            Err(e) => warn!("video write: {e}"),
        }
    }

    /// Handles one datagram from the socket.
    fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        local: SocketAddr,
        data: &[u8],
        shared: &Shared,
    ) {
        if let Some(relay) = self.relays.iter_mut().find(|r| r.server() == source) {
            let mut out = Vec::new();
            if let Some((peer, payload)) = relay.handle_incoming(data, now, &mut out) {
                let relayed = relay.relayed_addr();
                for (to, bytes) in out {
                    let _ = shared.socket.try_send_to(&bytes, to);
                }
                self.feed(now, peer, relayed, &payload);
            } else {
                for (to, bytes) in out {
                    let _ = shared.socket.try_send_to(&bytes, to);
                }
            }
            return;
        }
        self.feed(now, source, local, data);
    }

    fn feed(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            debug!("dropping an unrecognized datagram from {source}");
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            if let Err(e) = self.rtc.handle_input(input) {
                warn!("media input: {e}");
            }
        } else {
            debug!("no ICE session accepts a datagram from {source}");
        }
    }

    fn timeout(&mut self, now: Instant, shared: &Shared) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            warn!("media timeout: {e}");
        }
        for relay in &mut self.relays {
            let mut out = Vec::new();
            relay.on_timeout(now, &mut out);
            for (to, bytes) in out {
                let _ = shared.socket.try_send_to(&bytes, to);
            }
        }
    }

    /// Polls str0m until it has nothing more to say: sends its datagrams, handles its
    /// events. Records the next timeout.
    pub(crate) fn drain(&mut self, shared: &Shared) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let now = Instant::now();
                    if let Some(relay) = self
                        .relays
                        .iter_mut()
                        .find(|r| r.relayed_addr() == t.source)
                    {
                        let mut out = Vec::new();
                        relay.send_to(t.destination, &t.contents, now, &mut out);
                        for (to, bytes) in out {
                            let _ = shared.socket.try_send_to(&bytes, to);
                        }
                    } else if let Err(e) = shared.socket.try_send_to(&t.contents, t.destination) {
                        debug!("media send to {}: {e}", t.destination);
                    }
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    let reason: Arc<str> = Arc::from(format!("media engine: {e}"));
                    warn!("{reason}");
                    self.pending_events.push(MediaEvent::Failed(reason.clone()));
                    shared.conn.send_replace(Conn::Failed(reason));
                    self.close();
                    self.next_timeout = Instant::now() + Duration::from_secs(3600);
                    break;
                }
            }
        }
        for event in self.pending_events.drain(..) {
            let connected = event == MediaEvent::Connected;
            let _ = shared.events.send(event);
            if connected {
                shared.conn.send_replace(Conn::Connected);
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.pending_events.push(MediaEvent::Connected);
            }
            Event::Closed => {
                // The far end closed its media (DTLS close_notify); str0m shuts down.
                self.connected = false;
                self.pending_events.push(MediaEvent::Closed);
            }
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Disconnected => {
                    self.ice_disconnected = true;
                    self.pending_events.push(MediaEvent::Disconnected);
                }
                IceConnectionState::Connected | IceConnectionState::Completed
                    if self.ice_disconnected && self.connected =>
                {
                    self.ice_disconnected = false;
                    self.pending_events.push(MediaEvent::Connected);
                }
                _ => {}
            },
            Event::MediaAdded(added) => {
                self.note_media(added.mid, added.kind);
                self.after_negotiation();
            }
            Event::MediaChanged(_) => self.after_negotiation(),
            Event::MediaData(data) => {
                let codec = data.params.spec().codec;
                if codec == Codec::Tele {
                    if let CodecExtra::Tele(ev) = data.codec_extra {
                        let ts = data.time.numer();
                        if self.dtmf_last_rx != Some(ts) {
                            self.dtmf_last_rx = Some(ts);
                            if let Some(c) = dtmf_char(ev.event) {
                                self.stats.dtmf_received.push(c);
                                self.pending_events.push(MediaEvent::Dtmf(c));
                            }
                        }
                    }
                } else if let Some(audio) = audio_codec(codec) {
                    self.stats.audio_packets_received += 1;
                    self.play(audio, &data.data);
                } else if let Some(video) = video_codec_core(codec) {
                    self.stats.video_frames_received += 1;
                    if let Some(sink) = &self.devices.video_out {
                        sink.write_frame(VideoFrame {
                            codec: video,
                            keyframe: data.is_keyframe(),
                            data: data.data.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn play(&mut self, codec: AudioCodec, payload: &[u8]) {
        let Some(sink) = &self.devices.audio_out else {
            return;
        };
        if !codec.available() {
            return;
        }
        let decoder = match self.decoders.entry(codec) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => match AudioDecoder::new(codec) {
                Ok(d) => v.insert(d),
                Err(e) => {
                    warn!("audio decoder for {codec}: {e}");
                    return;
                }
            },
        };
        self.pcm.clear();
        match decoder.decode(payload, &mut self.pcm) {
            Ok(()) => sink.write_frame(codec.sample_rate(), &self.pcm),
            Err(e) => debug!("audio decode: {e}"),
        }
    }

    /// The earliest moment something is due: str0m's timeout or a TURN timer.
    fn deadline(&self) -> Instant {
        self.relays
            .iter()
            .filter_map(|r| r.poll_timeout())
            .fold(self.next_timeout, Instant::min)
    }
}

/// The far end's offer as we answer it while holding: what it would send to us is dropped
/// (`sendrecv` becomes `recvonly`, `sendonly` becomes `inactive`).
fn keep_local_hold(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix("\r\n") {
            Some(t) => (t, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(t) => (t, "\n"),
                None => (line, ""),
            },
        };
        let text = match text {
            "a=sendrecv" => "a=recvonly",
            "a=sendonly" => "a=inactive",
            other => other,
        };
        out.push_str(text);
        out.push_str(end);
    }
    out
}

/// How to undo a pending offer.
enum Undo {
    /// The first offer: no media yet.
    Initial,
    /// A hold offer: the directions and hold flag before it.
    Directions {
        local_hold: bool,
        previous: Vec<(Mid, Direction)>,
    },
}

fn dir_name(dir: Direction) -> &'static str {
    match dir {
        Direction::SendOnly => "sendonly",
        Direction::RecvOnly => "recvonly",
        Direction::SendRecv => "sendrecv",
        Direction::Inactive => "inactive",
    }
}

fn audio_codec(codec: Codec) -> Option<AudioCodec> {
    match codec {
        Codec::PCMU => Some(AudioCodec::Pcmu),
        Codec::PCMA => Some(AudioCodec::Pcma),
        Codec::Opus => Some(AudioCodec::Opus),
        _ => None,
    }
}

fn video_codec_core(codec: Codec) -> Option<VideoCodec> {
    match codec {
        Codec::Vp8 => Some(VideoCodec::Vp8),
        Codec::Vp9 => Some(VideoCodec::Vp9),
        Codec::H264 => Some(VideoCodec::H264),
        _ => None,
    }
}

fn video_codec_str0m(codec: VideoCodec) -> Codec {
    match codec {
        VideoCodec::Vp9 => Codec::Vp9,
        VideoCodec::H264 => Codec::H264,
        _ => Codec::Vp8,
    }
}

/// The task: waits for datagrams, timeouts, ticks and wake-ups, and drives the engine.
pub(crate) async fn run(shared: Arc<Shared>) {
    let video_interval = {
        let engine = shared.lock();
        engine
            .devices
            .video_in
            .as_ref()
            .filter(|_| engine.config.video)
            .map(|v| v.frame_interval().max(Duration::from_millis(5)))
    };
    let mut audio = tokio::time::interval(AUDIO_TICK);
    audio.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut video = tokio::time::interval(video_interval.unwrap_or(Duration::from_secs(3600)));
    video.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let local = shared.host;
    let mut buf = vec![0u8; 2048];
    loop {
        let deadline = {
            let engine = shared.lock();
            if engine.is_closed() {
                break;
            }
            engine.deadline()
        };
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
        tokio::select! {
            _ = sleep => {
                let mut engine = shared.lock();
                engine.timeout(Instant::now(), &shared);
                engine.drain(&shared);
            }
            received = shared.socket.recv_from(&mut buf) => {
                match received {
                    Ok((n, source)) => {
                        let mut engine = shared.lock();
                        engine.receive(Instant::now(), source, local, &buf[..n], &shared);
                        engine.drain(&shared);
                    }
                    // ICMP port unreachable and the like: the far end is not there (yet).
                    Err(e) => debug!("media socket: {e}"),
                }
            }
            _ = audio.tick() => {
                let mut engine = shared.lock();
                engine.audio_tick(Instant::now());
                engine.drain(&shared);
            }
            _ = video.tick(), if video_interval.is_some() => {
                let mut engine = shared.lock();
                engine.video_tick(Instant::now());
                engine.drain(&shared);
            }
            _ = shared.wake.notified() => {}
        }
    }
    // Let the RTCP BYE, the DTLS close alert and the TURN deallocation out.
    let mut engine = shared.lock();
    engine.drain(&shared);
    for _ in 0..8 {
        if !engine.rtc.is_alive() {
            break;
        }
        let _ = engine.rtc.handle_input(Input::Timeout(Instant::now()));
        engine.drain(&shared);
    }
    let mut out = Vec::new();
    for relay in &mut engine.relays {
        relay.release(Instant::now(), &mut out);
    }
    for (to, bytes) in out {
        let _ = shared.socket.try_send_to(&bytes, to);
    }
    drop(engine);
    shared.conn.send_if_modified(|c| {
        if *c == Conn::Closed {
            false
        } else {
            *c = Conn::Closed;
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_side_reads_offers_without_their_receive_part() {
        let offer =
            "v=0\r\na=sendrecv\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendonly\r\na=recvonly\r\n";
        assert_eq!(
            keep_local_hold(offer),
            "v=0\r\na=recvonly\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=inactive\r\na=recvonly\r\n"
        );
        assert_eq!(
            keep_local_hold("a=sendrecv\na=sendrecvx"),
            "a=recvonly\na=sendrecvx"
        );
    }
}
