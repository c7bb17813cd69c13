//! Ready-made media devices for tests, demos and simulators.
//!
//! - [`ToneSource`]: a sine tone as the microphone.
//! - [`RecordingSink`]: a speaker that keeps the last two seconds and can tell the tone's pitch.
//! - [`TestPatternVideo`]: a camera+encoder that produces small VP8 frames (valid frame
//!   headers, filler content) so the far end can count them.
//! - [`CountingVideoSink`]: a screen that counts frames.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cc_core::media::{AudioSink, AudioSource, VideoCodec, VideoFrame, VideoSink, VideoSource};

/// A sine tone at a fixed pitch, at whatever sample rate the codec asks for.
#[derive(Debug)]
pub struct ToneSource {
    hz: f32,
    amplitude: f32,
    /// Phase in cycles (0..1), carried from frame to frame.
    phase: Mutex<f64>,
    frames: AtomicU64,
}

impl ToneSource {
    /// A tone at `hz` with an amplitude of a quarter of full scale.
    pub fn new(hz: f32) -> Self {
        ToneSource {
            hz,
            amplitude: 8192.0,
            phase: Mutex::new(0.0),
            frames: AtomicU64::new(0),
        }
    }

    /// The pitch.
    pub fn hz(&self) -> f32 {
        self.hz
    }

    /// How many frames were read so far.
    pub fn frames_read(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

impl AudioSource for ToneSource {
    fn read_frame(&self, sample_rate: u32, out: &mut [i16]) {
        let step = f64::from(self.hz) / f64::from(sample_rate.max(1));
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        for s in out.iter_mut() {
            *s = (f64::from(self.amplitude) * (std::f64::consts::TAU * *phase).sin()) as i16;
            *phase = (*phase + step).fract();
        }
        self.frames.fetch_add(1, Ordering::Relaxed);
    }
}

/// The longest stretch of audio a [`RecordingSink`] keeps.
const RECORDING_KEEP: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Recording {
    sample_rate: u32,
    samples: VecDeque<i16>,
}

/// An audio sink that counts frames and keeps the last two seconds of samples.
#[derive(Debug, Default)]
pub struct RecordingSink {
    frames: AtomicU64,
    recording: Mutex<Recording>,
}

impl RecordingSink {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// The sample rate of the kept samples (0 before the first frame).
    pub fn sample_rate(&self) -> u32 {
        self.lock().sample_rate
    }

    /// A copy of the kept samples, oldest first (at most two seconds).
    pub fn samples(&self) -> Vec<i16> {
        self.lock().samples.iter().copied().collect()
    }

    /// The root-mean-square level of the kept samples.
    pub fn rms(&self) -> f32 {
        let rec = self.lock();
        rms(rec.samples.iter().copied())
    }

    /// The pitch of the kept audio, estimated from its zero crossings (with a little
    /// hysteresis so quantization noise does not count). `None` when there is less than
    /// 100 ms of audio or it is close to silence.
    pub fn dominant_hz(&self) -> Option<f32> {
        let rec = self.lock();
        dominant_hz(rec.samples.iter().copied(), rec.sample_rate)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AudioSink for RecordingSink {
    fn write_frame(&self, sample_rate: u32, pcm: &[i16]) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        let mut rec = self.lock();
        if rec.sample_rate != sample_rate {
            rec.samples.clear();
            rec.sample_rate = sample_rate;
        }
        rec.samples.extend(pcm.iter().copied());
        let keep = (u128::from(sample_rate) * RECORDING_KEEP.as_millis() / 1000) as usize;
        while rec.samples.len() > keep {
            rec.samples.pop_front();
        }
    }
}

fn rms(samples: impl Iterator<Item = i16>) -> f32 {
    let (sum, n) = samples.fold((0f64, 0usize), |(sum, n), s| {
        (sum + f64::from(s).powi(2), n + 1)
    });
    if n == 0 {
        0.0
    } else {
        (sum / n as f64).sqrt() as f32
    }
}

/// The pitch of `samples` at `sample_rate`, by counting rising zero crossings.
fn dominant_hz(samples: impl Iterator<Item = i16> + Clone, sample_rate: u32) -> Option<f32> {
    let n = samples.clone().count();
    if sample_rate == 0 || n < (sample_rate / 10) as usize {
        return None;
    }
    let level = rms(samples.clone());
    if level < 50.0 {
        return None;
    }
    let threshold = (level * 0.2) as i32;
    let mut below = None;
    let mut first = None;
    let mut last = 0usize;
    let mut crossings = 0u32;
    for (i, s) in samples.enumerate() {
        let s = i32::from(s);
        if s < -threshold {
            below = Some(true);
        } else if s > threshold && below == Some(true) {
            below = Some(false);
            if first.is_none() {
                first = Some(i);
            } else {
                crossings += 1;
            }
            last = i;
        }
    }
    let first = first?;
    if crossings == 0 || last <= first {
        return None;
    }
    Some(crossings as f32 * sample_rate as f32 / (last - first) as f32)
}

/// A video source of small VP8 frames: a key frame first and every `keyframe_every` frames,
/// delta frames between. The frames carry a valid VP8 frame tag (and key-frame start code and
/// size) followed by filler, enough for packetizers and key-frame detection, not for a decoder.
#[derive(Debug)]
pub struct TestPatternVideo {
    interval: Duration,
    keyframe_every: u64,
    counter: AtomicU64,
}

impl TestPatternVideo {
    /// 30 frames a second, a key frame every 30 frames.
    pub fn new() -> Self {
        TestPatternVideo {
            interval: Duration::from_millis(33),
            keyframe_every: 30,
            counter: AtomicU64::new(0),
        }
    }

    /// The same with another frame interval.
    pub fn with_interval(interval: Duration) -> Self {
        TestPatternVideo {
            interval,
            ..Self::new()
        }
    }

    /// Frames produced so far.
    pub fn frames(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    /// The frame with sequence number `n` (0 is a key frame).
    pub fn frame(&self, n: u64) -> VideoFrame {
        let keyframe = n.is_multiple_of(self.keyframe_every.max(1));
        VideoFrame {
            codec: VideoCodec::Vp8,
            data: vp8_frame(n, keyframe).into(),
            keyframe,
        }
    }
}

impl Default for TestPatternVideo {
    fn default() -> Self {
        Self::new()
    }
}

impl VideoSource for TestPatternVideo {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Vp8
    }

    fn frame_interval(&self) -> Duration {
        self.interval
    }

    fn next_frame(&self) -> Option<VideoFrame> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Some(self.frame(n))
    }
}

/// Builds a VP8 frame (RFC 6386 §9.1): 3-byte frame tag, and for key frames the start code
/// and a 160x120 size, then `n`-dependent filler.
fn vp8_frame(n: u64, keyframe: bool) -> Vec<u8> {
    let filler_len = if keyframe { 600 } else { 120 };
    let header_len = if keyframe { 10 } else { 3 };
    let first_partition = (filler_len as u32) & 0x7_ffff;
    // bit 0: inverse key frame flag; bits 1-3: version 0; bit 4: show_frame; bits 5-23: size.
    let tag = u32::from(!keyframe) | (1 << 4) | (first_partition << 5);
    let mut out = Vec::with_capacity(header_len + filler_len);
    out.extend_from_slice(&tag.to_le_bytes()[..3]);
    if keyframe {
        out.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        out.extend_from_slice(&160u16.to_le_bytes());
        out.extend_from_slice(&120u16.to_le_bytes());
    }
    out.extend((0..filler_len).map(|i| (i as u64).wrapping_mul(31).wrapping_add(n) as u8));
    out
}

/// A video sink that counts what arrives.
#[derive(Debug, Default)]
pub struct CountingVideoSink {
    frames: AtomicU64,
    keyframes: AtomicU64,
    bytes: AtomicU64,
    last: Mutex<Option<VideoFrame>>,
}

impl CountingVideoSink {
    /// A sink that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames received.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Key frames received.
    pub fn keyframes(&self) -> u64 {
        self.keyframes.load(Ordering::Relaxed)
    }

    /// Payload bytes received.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The last frame received.
    pub fn last_frame(&self) -> Option<VideoFrame> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl VideoSink for CountingVideoSink {
    fn write_frame(&self, frame: VideoFrame) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        if frame.keyframe {
            self.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(frame);
    }
}

/// Shorthand for `Arc::new(ToneSource::new(hz))` as a trait object.
pub fn tone(hz: f32) -> Arc<dyn AudioSource> {
    Arc::new(ToneSource::new(hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_is_recognized_at_several_rates() {
        for rate in [8_000, 16_000, 48_000] {
            let tone = ToneSource::new(440.0);
            let sink = RecordingSink::new();
            let mut frame = vec![0i16; (rate / 50) as usize];
            for _ in 0..50 {
                tone.read_frame(rate, &mut frame);
                sink.write_frame(rate, &frame);
            }
            let hz = sink.dominant_hz().unwrap();
            assert!((hz - 440.0).abs() < 5.0, "{rate}: {hz}");
            assert_eq!(sink.frames(), 50);
            assert!(sink.rms() > 5000.0);
        }
    }

    #[test]
    fn recording_is_bounded_and_silence_has_no_pitch() {
        let sink = RecordingSink::new();
        let silence = vec![0i16; 160];
        for _ in 0..500 {
            sink.write_frame(8_000, &silence);
        }
        assert_eq!(sink.samples().len(), 16_000);
        assert_eq!(sink.dominant_hz(), None);
        assert_eq!(RecordingSink::new().dominant_hz(), None);
    }

    #[test]
    fn different_tones_are_told_apart() {
        let sink = RecordingSink::new();
        let tone = ToneSource::new(1000.0);
        let mut frame = vec![0i16; 160];
        for _ in 0..20 {
            tone.read_frame(8_000, &mut frame);
            sink.write_frame(8_000, &frame);
        }
        let hz = sink.dominant_hz().unwrap();
        assert!((hz - 1000.0).abs() < 10.0, "{hz}");
    }

    #[test]
    fn test_pattern_frames_look_like_vp8() {
        let video = TestPatternVideo::new();
        let key = video.next_frame().unwrap();
        assert!(key.keyframe);
        assert_eq!(key.data[0] & 1, 0, "key frame flag");
        assert_eq!(&key.data[3..6], &[0x9d, 0x01, 0x2a]);
        let delta = video.next_frame().unwrap();
        assert!(!delta.keyframe);
        assert_eq!(delta.data[0] & 1, 1);
        assert_eq!(video.frames(), 2);
        let sink = CountingVideoSink::new();
        sink.write_frame(key);
        sink.write_frame(delta);
        assert_eq!((sink.frames(), sink.keyframes()), (2, 1));
        assert_eq!(sink.last_frame().map(|f| f.keyframe), Some(false));
    }
}
