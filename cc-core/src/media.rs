//! The app's media devices and the media figures of a call.
//!
//! A call needs something to play into and something to record from. The SDK does not open
//! microphones, cameras or speakers itself: the app hands in [`MediaDevices`], four optional
//! trait objects. Audio crosses these traits as 16-bit mono PCM in 20 ms frames at the rate the
//! negotiated codec runs at (8 kHz for G.711, 48 kHz for Opus). Video crosses them already
//! encoded (VP8, VP9 or H.264): the app owns its encoders and decoders.
//!
//! `cc-rtc` has ready-made devices for tests and demos: a tone source and a recording sink.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The length of one audio frame handed to or taken from the app.
pub const AUDIO_FRAME: Duration = Duration::from_millis(20);

/// Where the call's outgoing audio comes from (a microphone, a file, a tone).
pub trait AudioSource: Send + Sync + fmt::Debug + 'static {
    /// Fills `out` with the next 20 ms of mono PCM at `sample_rate` Hz
    /// (`out.len() == sample_rate / 50`). Called once per frame while the call sends audio.
    fn read_frame(&self, sample_rate: u32, out: &mut [i16]);
}

/// Where the call's incoming audio goes (a speaker, a file, a test recorder).
pub trait AudioSink: Send + Sync + fmt::Debug + 'static {
    /// Takes the next decoded frame of mono PCM at `sample_rate` Hz.
    fn write_frame(&self, sample_rate: u32, pcm: &[i16]);
}

/// A video codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoCodec {
    /// VP8.
    Vp8,
    /// VP9.
    Vp9,
    /// H.264.
    H264,
}

/// One encoded video frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoFrame {
    /// The codec the data is in.
    pub codec: VideoCodec,
    /// The encoded frame.
    pub data: Arc<[u8]>,
    /// Whether this is a key frame.
    pub keyframe: bool,
}

/// Where the call's outgoing video comes from (an encoder fed by a camera).
pub trait VideoSource: Send + Sync + fmt::Debug + 'static {
    /// The codec the frames are in.
    fn codec(&self) -> VideoCodec;
    /// Time between frames.
    fn frame_interval(&self) -> Duration {
        Duration::from_millis(33)
    }
    /// The next frame, or `None` when there is none to send now.
    fn next_frame(&self) -> Option<VideoFrame>;
}

/// Where the call's incoming video goes (a decoder feeding a screen).
pub trait VideoSink: Send + Sync + fmt::Debug + 'static {
    /// Takes the next received frame.
    fn write_frame(&self, frame: VideoFrame);
}

/// The devices a call plays from and records into. A missing source sends nothing on that
/// track (the track is still negotiated, so the far end can send); a missing sink drops what
/// arrives (it is still counted in [`CallStats`]).
#[derive(Clone, Debug, Default)]
pub struct MediaDevices {
    /// Outgoing audio.
    pub audio_in: Option<Arc<dyn AudioSource>>,
    /// Incoming audio.
    pub audio_out: Option<Arc<dyn AudioSink>>,
    /// Outgoing video.
    pub video_in: Option<Arc<dyn VideoSource>>,
    /// Incoming video.
    pub video_out: Option<Arc<dyn VideoSink>>,
}

/// Media figures of a call, counted since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// RTP audio packets sent.
    pub audio_packets_sent: u64,
    /// RTP audio packets received.
    pub audio_packets_received: u64,
    /// Video frames sent.
    pub video_frames_sent: u64,
    /// Video frames received.
    pub video_frames_received: u64,
    /// DTMF digits received from the far end, in order.
    pub dtmf_received: String,
    /// The negotiated audio codec (`"PCMU"`, `"PCMA"`, `"opus"`), once known.
    pub audio_codec: Option<Arc<str>>,
}
