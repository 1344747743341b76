//! The controller session: one task owns the port, answers every frame the
//! controller sends with ACK (or NAK when broken), and runs the host's requests
//! one at a time, so exactly one transmission is in flight.
//!
//! A request is done when the controller has ACKed it, sent its response and,
//! for SendData and RequestNodeInfo, its callback. Only then does the next one
//! go out; waiting for a node's *report* happens outside the session, so other
//! locks can use the radio meanwhile.
//!
//! Retransmission follows the host API: a frame not ACKed within 1.6 s, or
//! NAKed / CANed, goes again after 100 ms + 1 s per earlier attempt, at most
//! three times.

use super::frame::{DataFrame, Decoder, Frame, FrameType, ACK, NAK};
use super::serialapi::{func, TxStatus};
use super::transport::{Transport, TransportError};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Timing of the host side of the Serial API.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How long the controller gets to ACK a frame.
    pub ack_timeout: Duration,
    /// How long the controller gets to send the response to a request.
    pub response_timeout: Duration,
    /// How long a SendData / RequestNodeInfo callback may take (the
    /// controller's own routing attempts are inside it).
    pub callback_timeout: Duration,
    /// Retransmissions after the first attempt.
    pub max_retransmits: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            ack_timeout: Duration::from_millis(1600),
            response_timeout: Duration::from_secs(10),
            callback_timeout: Duration::from_secs(65),
            max_retransmits: 3,
        }
    }
}

/// Why a request to the controller did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the controller connection is closed")]
    Closed,
    #[error("the controller did not acknowledge the frame after {0} attempts")]
    NoAck(u32),
    #[error("the controller sent no response to function 0x{0:02x}")]
    NoResponse(u8),
    #[error("the controller sent no callback for function 0x{0:02x}")]
    NoCallback(u8),
    #[error("the controller refused the request (function 0x{0:02x})")]
    Refused(u8),
    #[error("malformed answer from the controller: {0}")]
    Malformed(String),
    #[error("{0}")]
    Frame(#[from] super::frame::FrameError),
}

/// What completes a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Done once ACKed (AddNode / RemoveNode: their answers are callbacks
    /// that arrive as unsolicited requests).
    Ack,
    Response,
    /// SendData: response (accepted?) then the callback with this id.
    Callback(u8),
    /// RequestNodeInfo: response then an ApplicationUpdate for this node.
    NodeUpdate(u8),
}

#[derive(Debug)]
struct Done {
    response: DataFrame,
    follow_up: Option<DataFrame>,
}

struct Job {
    frame: DataFrame,
    expect: Expect,
    reply: oneshot::Sender<Result<Done, SessionError>>,
}

/// A handle to the controller session; cheap to share behind an `Arc`.
pub struct Session {
    jobs: mpsc::Sender<Job>,
    next_callback: AtomicU8,
    /// SendData requests handed to the controller (radio frames we asked for).
    sent: std::sync::atomic::AtomicU64,
}

impl Session {
    /// Starts the session task on `transport`. Unsolicited requests from the
    /// controller (ApplicationCommandHandler, ApplicationUpdate, ...) arrive on
    /// the returned receiver; it closes when the port does.
    pub fn start(
        transport: Box<dyn Transport>,
        config: SessionConfig,
    ) -> (Session, mpsc::UnboundedReceiver<DataFrame>) {
        let (session, inbound, _state) = Self::start_inner(transport, None, config);
        (session, inbound)
    }

    /// Like [`Session::start`], but when the port closes (a USB stick reset,
    /// a dropped TCP link) it is opened again with `opener`, with a backoff
    /// from 0.5 s to 30 s; requests fail with [`SessionError::Closed`] in
    /// between. The watch says whether the port is open now.
    pub fn start_reconnecting(
        transport: Box<dyn Transport>,
        opener: Opener,
        config: SessionConfig,
    ) -> (
        Session,
        mpsc::UnboundedReceiver<DataFrame>,
        watch::Receiver<bool>,
    ) {
        Self::start_inner(transport, Some(opener), config)
    }

    fn start_inner(
        transport: Box<dyn Transport>,
        opener: Option<Opener>,
        config: SessionConfig,
    ) -> (
        Session,
        mpsc::UnboundedReceiver<DataFrame>,
        watch::Receiver<bool>,
    ) {
        let (jobs_tx, jobs_rx) = mpsc::channel(64);
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(true);
        tokio::spawn(supervise(
            transport, opener, config, jobs_rx, in_tx, state_tx,
        ));
        (
            Session {
                jobs: jobs_tx,
                next_callback: AtomicU8::new(1),
                sent: std::sync::atomic::AtomicU64::new(0),
            },
            in_rx,
            state_rx,
        )
    }

    async fn submit(&self, frame: DataFrame, expect: Expect) -> Result<Done, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                frame,
                expect,
                reply: tx,
            })
            .await
            .map_err(|_| SessionError::Closed)?;
        rx.await.map_err(|_| SessionError::Closed)?
    }

    /// A request that the controller answers with a response frame; returns
    /// the response's payload.
    pub async fn request(&self, func: u8, payload: Vec<u8>) -> Result<Vec<u8>, SessionError> {
        let done = self
            .submit(DataFrame::request(func, payload), Expect::Response)
            .await?;
        Ok(done.response.payload)
    }

    /// A request the controller only ACKs; what follows comes as unsolicited
    /// requests on the inbound channel (network management callbacks).
    pub async fn request_ack_only(&self, func: u8, payload: Vec<u8>) -> Result<(), SessionError> {
        self.submit(DataFrame::request(func, payload), Expect::Ack)
            .await
            .map(|_| ())
    }

    /// A fresh callback id (never 0), for requests whose callbacks the
    /// caller matches itself.
    pub fn next_callback_id(&self) -> u8 {
        self.callback_id()
    }

    /// How many SendData requests went out so far.
    pub fn frames_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn callback_id(&self) -> u8 {
        loop {
            let id = self.next_callback.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Sends a command (class id, command id, parameters) to `node` and
    /// returns the transmit status of the callback.
    pub async fn send_data(&self, node: u8, command: &[u8]) -> Result<TxStatus, SessionError> {
        let cb = self.callback_id();
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut p = Vec::with_capacity(command.len() + 4);
        p.push(node);
        p.push(command.len() as u8);
        p.extend_from_slice(command);
        p.push(super::serialapi::TX_OPTIONS);
        p.push(cb);
        let done = self
            .submit(DataFrame::request(func::SEND_DATA, p), Expect::Callback(cb))
            .await?;
        let cb_frame = done
            .follow_up
            .ok_or(SessionError::NoCallback(func::SEND_DATA))?;
        let status = *cb_frame
            .payload
            .get(1)
            .ok_or_else(|| SessionError::Malformed("short SendData callback".into()))?;
        Ok(TxStatus::from_byte(status))
    }

    /// Asks `node` for its node information frame; returns the
    /// ApplicationUpdate payload (status, node, len, classes..).
    pub async fn request_node_info(&self, node: u8) -> Result<Vec<u8>, SessionError> {
        let done = self
            .submit(
                DataFrame::request(func::REQUEST_NODE_INFO, vec![node]),
                Expect::NodeUpdate(node),
            )
            .await?;
        done.follow_up
            .map(|f| f.payload)
            .ok_or(SessionError::NoCallback(func::REQUEST_NODE_INFO))
    }
}

/// Opens the controller's port again after it closed.
pub type Opener = std::sync::Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<Box<dyn Transport>, TransportError>>
        + Send
        + Sync,
>;

/// The session task: serves the port, and reopens it when it closes (if it
/// can), failing requests while there is no port.
async fn supervise(
    mut transport: Box<dyn Transport>,
    opener: Option<Opener>,
    config: SessionConfig,
    mut jobs: mpsc::Receiver<Job>,
    inbound: mpsc::UnboundedSender<DataFrame>,
    state: watch::Sender<bool>,
) {
    loop {
        let (r, w) = tokio::io::split(transport);
        let io = Io {
            reader: r,
            writer: w,
            decoder: Decoder::new(),
            buf: vec![0u8; 512],
            inbound: inbound.clone(),
            config: config.clone(),
        };
        let _ = state.send(true);
        if !io.run(&mut jobs).await {
            return;
        }
        tracing::warn!("z-wave controller port closed");
        let _ = state.send(false);
        let Some(opener) = &opener else {
            jobs.close();
            while let Some(j) = jobs.recv().await {
                let _ = j.reply.send(Err(SessionError::Closed));
            }
            return;
        };
        let mut delay = Duration::from_millis(500);
        transport = loop {
            let attempt = tokio::time::sleep(delay);
            tokio::pin!(attempt);
            // Fail requests while waiting, so nobody hangs on a missing port.
            loop {
                tokio::select! {
                    _ = &mut attempt => break,
                    job = jobs.recv() => match job {
                        Some(j) => { let _ = j.reply.send(Err(SessionError::Closed)); }
                        None => return,
                    },
                }
            }
            match opener().await {
                Ok(t) => break t,
                Err(e) => {
                    tracing::warn!(error = %e, "z-wave controller port not back yet");
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        };
        tracing::info!("z-wave controller port open again");
    }
}

struct Io {
    reader: ReadHalf<Box<dyn Transport>>,
    writer: WriteHalf<Box<dyn Transport>>,
    decoder: Decoder,
    buf: Vec<u8>,
    inbound: mpsc::UnboundedSender<DataFrame>,
    config: SessionConfig,
}

/// Outcome of waiting for the next frame.
enum Next {
    Frame(Frame),
    Timeout,
}

impl Io {
    /// Serves jobs until the port closes (true) or every handle is gone (false).
    async fn run(mut self, jobs: &mut mpsc::Receiver<Job>) -> bool {
        loop {
            // Frames already decoded go first.
            while let Some(f) = self.decoder.next_frame() {
                if self.handle_unsolicited(f).await.is_err() {
                    return true;
                }
            }
            tokio::select! {
                job = jobs.recv() => {
                    let Some(job) = job else { return false };
                    let res = self.run_job(&job.frame, job.expect).await;
                    let closed = matches!(res, Err(SessionError::Closed));
                    let _ = job.reply.send(res);
                    if closed {
                        return true;
                    }
                }
                n = self.reader.read(&mut self.buf) => {
                    match n {
                        Ok(0) | Err(_) => return true,
                        Ok(n) => { let b = self.buf[..n].to_vec(); self.decoder.push(&b); }
                    }
                }
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|_| SessionError::Closed)?;
        self.writer.flush().await.map_err(|_| SessionError::Closed)
    }

    /// The next frame before `deadline`; data frames are ACKed (corrupt ones
    /// NAKed) here, so every caller gets that for free.
    async fn next(&mut self, deadline: Instant) -> Result<Next, SessionError> {
        loop {
            if let Some(f) = self.decoder.next_frame() {
                match &f {
                    Frame::Data(_) => self.write(&[ACK]).await?,
                    Frame::Corrupt => {
                        tracing::debug!("corrupt frame from controller, sending NAK");
                        self.write(&[NAK]).await?;
                        continue;
                    }
                    _ => {}
                }
                return Ok(Next::Frame(f));
            }
            let read = tokio::time::timeout_at(deadline, self.reader.read(&mut self.buf)).await;
            match read {
                Err(_) => return Ok(Next::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(SessionError::Closed),
                Ok(Ok(n)) => {
                    let b = self.buf[..n].to_vec();
                    self.decoder.push(&b);
                }
            }
        }
    }

    async fn handle_unsolicited(&mut self, f: Frame) -> Result<(), SessionError> {
        match f {
            Frame::Data(d) => {
                self.write(&[ACK]).await?;
                self.forward(d);
            }
            Frame::Corrupt => self.write(&[NAK]).await?,
            // A stray ACK/NAK/CAN outside a transmission means nothing.
            _ => {}
        }
        Ok(())
    }

    fn forward(&self, d: DataFrame) {
        if d.kind == FrameType::Request {
            let _ = self.inbound.send(d);
        } else {
            tracing::debug!(func = d.func, "unexpected response frame dropped");
        }
    }

    async fn run_job(&mut self, frame: &DataFrame, expect: Expect) -> Result<Done, SessionError> {
        let bytes = frame.encode()?;
        // 1. Get the frame ACKed.
        let mut attempt = 0u32;
        'send: loop {
            self.write(&bytes).await?;
            let deadline = Instant::now() + self.config.ack_timeout;
            loop {
                match self.next(deadline).await? {
                    Next::Frame(Frame::Ack) => break 'send,
                    Next::Frame(Frame::Nak) | Next::Frame(Frame::Can) | Next::Timeout => break,
                    Next::Frame(Frame::Data(d)) => self.forward(d),
                    Next::Frame(Frame::Corrupt) => {}
                }
            }
            attempt += 1;
            if attempt > self.config.max_retransmits {
                return Err(SessionError::NoAck(attempt));
            }
            tracing::debug!(func = frame.func, attempt, "retransmitting frame");
            tokio::time::sleep(Duration::from_millis(100 + 1000 * (attempt as u64 - 1))).await;
        }
        if expect == Expect::Ack {
            return Ok(Done {
                response: DataFrame::request(frame.func, vec![]),
                follow_up: None,
            });
        }
        // 2. The response.
        let deadline = Instant::now() + self.config.response_timeout;
        let response = loop {
            match self.next(deadline).await? {
                Next::Frame(Frame::Data(d)) => {
                    if d.kind == FrameType::Response && d.func == frame.func {
                        break d;
                    }
                    self.forward(d);
                }
                Next::Frame(_) => {}
                Next::Timeout => return Err(SessionError::NoResponse(frame.func)),
            }
        };
        if expect == Expect::Response {
            return Ok(Done {
                response,
                follow_up: None,
            });
        }
        if response.payload.first().copied().unwrap_or(0) == 0 {
            return Err(SessionError::Refused(frame.func));
        }
        // 3. The callback (or the node information).
        let deadline = Instant::now() + self.config.callback_timeout;
        loop {
            match self.next(deadline).await? {
                Next::Frame(Frame::Data(d)) => {
                    if d.kind == FrameType::Request && matches_follow_up(expect, &d) {
                        return Ok(Done {
                            response,
                            follow_up: Some(d),
                        });
                    }
                    self.forward(d);
                }
                Next::Frame(_) => {}
                Next::Timeout => return Err(SessionError::NoCallback(frame.func)),
            }
        }
    }
}

fn matches_follow_up(expect: Expect, d: &DataFrame) -> bool {
    use super::serialapi::update;
    match expect {
        Expect::Response | Expect::Ack => false,
        Expect::Callback(id) => d.func == func::SEND_DATA && d.payload.first() == Some(&id),
        Expect::NodeUpdate(node) => {
            d.func == func::APPLICATION_UPDATE
                && match d.payload.first() {
                    Some(&update::NODE_INFO_RECEIVED) => d.payload.get(1) == Some(&node),
                    Some(&update::NODE_INFO_REQUEST_FAILED) => true,
                    _ => false,
                }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::zwave::frame::CAN;
    use tokio::io::duplex;

    /// A fake controller on the other end of an in-memory pipe.
    async fn read_frame(d: &mut Decoder, s: &mut tokio::io::DuplexStream) -> Frame {
        let mut buf = [0u8; 256];
        loop {
            if let Some(f) = d.next_frame() {
                return f;
            }
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "host closed");
            d.push(&buf[..n]);
        }
    }

    fn fast() -> SessionConfig {
        SessionConfig {
            ack_timeout: Duration::from_millis(200),
            response_timeout: Duration::from_millis(500),
            callback_timeout: Duration::from_millis(500),
            max_retransmits: 3,
        }
    }

    #[tokio::test]
    async fn request_retransmits_after_nak_and_acks_response() {
        let (host, mut ctrl) = duplex(1024);
        let (session, _inbound) = Session::start(Box::new(host), fast());
        let fake = tokio::spawn(async move {
            let mut d = Decoder::new();
            let f1 = read_frame(&mut d, &mut ctrl).await;
            assert!(matches!(f1, Frame::Data(ref x) if x.func == 0x15));
            ctrl.write_all(&[NAK]).await.unwrap();
            let f2 = read_frame(&mut d, &mut ctrl).await;
            assert_eq!(f1, f2, "the same frame again");
            ctrl.write_all(&[ACK]).await.unwrap();
            let resp = DataFrame {
                kind: FrameType::Response,
                func: 0x15,
                payload: b"Z-Wave 7.21\0\x07".to_vec(),
            };
            ctrl.write_all(&resp.encode().unwrap()).await.unwrap();
            assert_eq!(read_frame(&mut d, &mut ctrl).await, Frame::Ack);
        });
        let payload = session.request(0x15, vec![]).await.unwrap();
        assert_eq!(&payload[..11], b"Z-Wave 7.21");
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn send_data_waits_for_its_callback_and_forwards_the_rest() {
        let (host, mut ctrl) = duplex(1024);
        let (session, mut inbound) = Session::start(Box::new(host), fast());
        let fake = tokio::spawn(async move {
            let mut d = Decoder::new();
            let Frame::Data(req) = read_frame(&mut d, &mut ctrl).await else {
                panic!("expected SendData")
            };
            assert_eq!(req.func, 0x13);
            assert_eq!(&req.payload[..4], &[0x03, 0x02, 0x80, 0x02]);
            let cb = *req.payload.last().unwrap();
            ctrl.write_all(&[ACK]).await.unwrap();
            let resp = DataFrame {
                kind: FrameType::Response,
                func: 0x13,
                payload: vec![0x01],
            };
            ctrl.write_all(&resp.encode().unwrap()).await.unwrap();
            // An unrelated report slips in before the callback.
            let report = DataFrame::request(0x04, vec![0x00, 0x02, 0x03, 0x80, 0x03, 0x55]);
            ctrl.write_all(&report.encode().unwrap()).await.unwrap();
            let callback = DataFrame::request(0x13, vec![cb, 0x01]);
            ctrl.write_all(&callback.encode().unwrap()).await.unwrap();
            for _ in 0..3 {
                assert_eq!(read_frame(&mut d, &mut ctrl).await, Frame::Ack);
            }
        });
        let status = session.send_data(3, &[0x80, 0x02]).await.unwrap();
        assert_eq!(status, TxStatus::NoAck);
        let fwd = inbound.recv().await.unwrap();
        assert_eq!(fwd.func, 0x04);
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn naks_corrupt_frames_and_retransmits_after_can() {
        let (host, mut ctrl) = duplex(1024);
        let (session, mut inbound) = Session::start(Box::new(host), fast());
        let fake = tokio::spawn(async move {
            let mut d = Decoder::new();
            // Garbage and a frame with a broken checksum: the host must NAK it.
            let mut bad = DataFrame::request(0x04, vec![0, 2, 2, 0x80, 0x03])
                .encode()
                .unwrap();
            let n = bad.len();
            bad[n - 1] ^= 0xFF;
            ctrl.write_all(&[0x42, 0x00]).await.unwrap();
            ctrl.write_all(&bad).await.unwrap();
            assert_eq!(read_frame(&mut d, &mut ctrl).await, Frame::Nak);
            // The same frame again, intact: ACKed and forwarded.
            let good = DataFrame::request(0x04, vec![0, 2, 3, 0x80, 0x03, 0x64]);
            ctrl.write_all(&good.encode().unwrap()).await.unwrap();
            assert_eq!(read_frame(&mut d, &mut ctrl).await, Frame::Ack);
            // A request from the host, answered with CAN (collision): resent.
            let f1 = read_frame(&mut d, &mut ctrl).await;
            ctrl.write_all(&[CAN]).await.unwrap();
            let f2 = read_frame(&mut d, &mut ctrl).await;
            assert_eq!(f1, f2);
            ctrl.write_all(&[ACK]).await.unwrap();
            let resp = DataFrame {
                kind: FrameType::Response,
                func: 0x20,
                payload: vec![0xC0, 0xFF, 0xEE, 0x01, 0x01],
            };
            ctrl.write_all(&resp.encode().unwrap()).await.unwrap();
            assert_eq!(read_frame(&mut d, &mut ctrl).await, Frame::Ack);
        });
        let fwd = inbound.recv().await.unwrap();
        assert_eq!(fwd.payload, vec![0, 2, 3, 0x80, 0x03, 0x64]);
        let id = session.request(0x20, vec![]).await.unwrap();
        assert_eq!(id, vec![0xC0, 0xFF, 0xEE, 0x01, 0x01]);
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn node_info_request_ends_with_the_failure_update() {
        let (host, mut ctrl) = duplex(1024);
        let (session, _inbound) = Session::start(Box::new(host), fast());
        let fake = tokio::spawn(async move {
            let mut d = Decoder::new();
            let Frame::Data(req) = read_frame(&mut d, &mut ctrl).await else {
                panic!("expected RequestNodeInfo")
            };
            assert_eq!((req.func, req.payload.clone()), (0x60, vec![5]));
            ctrl.write_all(&[ACK]).await.unwrap();
            let resp = DataFrame {
                kind: FrameType::Response,
                func: 0x60,
                payload: vec![1],
            };
            ctrl.write_all(&resp.encode().unwrap()).await.unwrap();
            // Another node's NIF is not the answer; the failure update is.
            let other = DataFrame::request(0x49, vec![0x84, 7, 3, 4, 0x40, 3]);
            ctrl.write_all(&other.encode().unwrap()).await.unwrap();
            let failed = DataFrame::request(0x49, vec![0x81, 0, 0]);
            ctrl.write_all(&failed.encode().unwrap()).await.unwrap();
            for _ in 0..3 {
                assert_eq!(read_frame(&mut d, &mut ctrl).await, Frame::Ack);
            }
        });
        let update = session.request_node_info(5).await.unwrap();
        assert_eq!(update[0], 0x81);
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn gives_up_after_retransmits() {
        let (host, mut ctrl) = duplex(4096);
        let mut cfg = fast();
        cfg.ack_timeout = Duration::from_millis(20);
        cfg.max_retransmits = 1;
        let (session, _inbound) = Session::start(Box::new(host), cfg);
        let drain = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            while ctrl.read(&mut buf).await.unwrap_or(0) > 0 {}
        });
        let err = session.request(0x15, vec![]).await.unwrap_err();
        assert_eq!(err, SessionError::NoAck(2));
        drop(session);
        drain.abort();
    }
}
