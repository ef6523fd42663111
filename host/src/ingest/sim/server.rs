//! The simulated camera's RTSP 1.0 server: OPTIONS, DESCRIBE, SETUP (TCP interleaved or UDP),
//! PLAY, TEARDOWN, GET/SET_PARAMETER; Basic and Digest authentication. Messages are parsed and
//! built with `rtsp-types`; RTP packetisation follows RFC 6184 (single NAL units and FU-A).

use super::encoder::{Camera, EncodedFrame};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use rtsp_types::headers;
use rtsp_types::{Message, Method, Request, Response, StatusCode, Version};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc};

/// Credentials the server demands, if any.
#[derive(Clone, Debug)]
pub struct Auth {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

const REALM: &str = "openva";
const MAX_RTP_PAYLOAD: usize = 1400;
const MAX_REQUEST: usize = 64 * 1024;

/// Serves `camera` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, camera: Arc<Camera>, auth: Option<Auth>) {
    let nonce: String = format!("{:032x}", rand::random::<u128>());
    let shared = Arc::new(Shared { camera, auth, nonce });
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = Conn::new(shared, peer).run(sock).await {
                        tracing::debug!(%peer, "rtsp connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

struct Shared {
    camera: Arc<Camera>,
    auth: Option<Auth>,
    nonce: String,
}

enum Sink {
    Tcp { channel: u8 },
    Udp { sock: Arc<UdpSocket>, peer: SocketAddr },
}

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    session: String,
    sink: Option<Sink>,
    sender: Option<tokio::task::JoinHandle<()>>,
}

/// Something for the connection's writer task to send.
type Out = mpsc::Sender<Bytes>;

impl Conn {
    fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        Conn { shared, peer, session: format!("{:016x}", rand::random::<u64>()), sink: None, sender: None }
    }

    async fn run(mut self, sock: TcpStream) -> std::io::Result<()> {
        sock.set_nodelay(true)?;
        let (mut rd, mut wr) = sock.into_split();
        let (out, mut rx) = mpsc::channel::<Bytes>(1024);
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = BytesMut::with_capacity(4096);
        let result = loop {
            // Parse every complete message in the buffer.
            loop {
                match Message::<Vec<u8>>::parse(&buf[..]) {
                    Ok((msg, used)) => {
                        let _ = buf.split_to(used);
                        if let Message::Request(req) = msg {
                            let close = req.method() == Method::Teardown;
                            let resp = self.handle(&req, &out).await;
                            if out.send(serialize(&resp)).await.is_err() || close {
                                self.stop();
                                drop(out);
                                let _ = writer.await;
                                return Ok(());
                            }
                        }
                        // Interleaved data from the client (RTCP receiver reports) is ignored.
                    }
                    Err(rtsp_types::ParseError::Incomplete(_)) => break,
                    Err(rtsp_types::ParseError::Error) => {
                        let resp = Response::builder(Version::V1_0, StatusCode::BadRequest).empty();
                        let _ = out.send(serialize(&resp.replace_body(Vec::new()))).await;
                        self.stop();
                        return Ok(());
                    }
                }
            }
            if buf.len() > MAX_REQUEST {
                break Ok(());
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        self.stop();
        writer.abort();
        result
    }

    fn stop(&mut self) {
        if let Some(h) = self.sender.take() {
            h.abort();
        }
    }

    async fn handle(&mut self, req: &Request<Vec<u8>>, out: &Out) -> Response<Vec<u8>> {
        let cseq = req.header(&headers::CSEQ).map(|v| v.as_str().to_owned()).unwrap_or_else(|| "0".into());
        let version = req.version();
        let reply = |status: StatusCode| {
            Response::builder(version, status).header(headers::CSEQ, cseq.clone()).header(headers::SERVER, "openva-sim")
        };
        if req.method() != Method::Options && !self.authorized(req) {
            let mut r = reply(StatusCode::Unauthorized).empty().replace_body(Vec::new());
            r.append_header(
                headers::WWW_AUTHENTICATE,
                format!("Digest realm=\"{REALM}\", nonce=\"{}\"", self.shared.nonce),
            );
            r.append_header(headers::WWW_AUTHENTICATE, format!("Basic realm=\"{REALM}\""));
            return r;
        }
        match req.method() {
            Method::Options => reply(StatusCode::Ok)
                .header(headers::PUBLIC, "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER")
                .build(Vec::new()),
            Method::Describe => {
                let base = req.request_uri().map(|u| u.as_str().trim_end_matches('/').to_owned()).unwrap_or_default();
                reply(StatusCode::Ok)
                    .header(headers::CONTENT_TYPE, "application/sdp")
                    .header(headers::CONTENT_BASE, format!("{base}/"))
                    .build(self.sdp().into_bytes())
            }
            Method::Setup => match self.setup(req).await {
                Ok(transport) => reply(StatusCode::Ok)
                    .header(headers::TRANSPORT, transport)
                    .header(headers::SESSION, format!("{};timeout=60", self.session))
                    .build(Vec::new()),
                Err(status) => reply(status).build(Vec::new()),
            },
            Method::Play => match self.play(req, out).await {
                Ok(rtp_info) => reply(StatusCode::Ok)
                    .header(headers::SESSION, self.session.clone())
                    .header(headers::RANGE, "npt=0.000-")
                    .header(headers::RTP_INFO, rtp_info)
                    .build(Vec::new()),
                Err(status) => reply(status).build(Vec::new()),
            },
            Method::Teardown => {
                self.stop();
                reply(StatusCode::Ok).header(headers::SESSION, self.session.clone()).build(Vec::new())
            }
            Method::GetParameter | Method::SetParameter => {
                reply(StatusCode::Ok).header(headers::SESSION, self.session.clone()).build(Vec::new())
            }
            _ => reply(StatusCode::MethodNotAllowed).build(Vec::new()),
        }
    }

    fn sdp(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let cam = &self.shared.camera;
        let profile = cam.sps.get(1..4).map(|p| format!("{:02X}{:02X}{:02X}", p[0], p[1], p[2])).unwrap_or_default();
        format!(
            "v=0\r\no=- {sess} 1 IN IP4 127.0.0.1\r\ns=openva simulated camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
             a=control:*\r\na=range:npt=0-\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={sps},{pps}\r\n\
             a=framerate:{fps}\r\na=control:trackID=0\r\n",
            sess = self.session,
            sps = b64.encode(&cam.sps),
            pps = b64.encode(&cam.pps),
            fps = cam.settings.fps,
        )
    }

    async fn setup(&mut self, req: &Request<Vec<u8>>) -> Result<String, StatusCode> {
        let transports = req
            .typed_header::<headers::Transports>()
            .map_err(|_| StatusCode::BadRequest)?
            .ok_or(StatusCode::BadRequest)?;
        for t in transports.iter() {
            let headers::Transport::Rtp(rtp) = t else {
                continue;
            };
            let tcp = matches!(rtp.lower_transport, Some(headers::RtpLowerTransport::Tcp));
            if tcp {
                let ch = rtp.params.interleaved.map(|(a, _)| a).unwrap_or(0);
                self.sink = Some(Sink::Tcp { channel: ch });
                return Ok(format!("RTP/AVP/TCP;unicast;interleaved={}-{}", ch, ch.wrapping_add(1)));
            }
            if let Some((rtp_port, rtcp_port)) = rtp.params.client_port {
                let sock = UdpSocket::bind((self.local_ip(), 0)).await.map_err(|_| StatusCode::InternalServerError)?;
                let local = sock.local_addr().map_err(|_| StatusCode::InternalServerError)?;
                let peer = SocketAddr::new(self.peer.ip(), rtp_port);
                self.sink = Some(Sink::Udp { sock: Arc::new(sock), peer });
                let rtcp = rtcp_port.unwrap_or(rtp_port.wrapping_add(1));
                return Ok(format!(
                    "RTP/AVP;unicast;client_port={rtp_port}-{rtcp};server_port={}-{}",
                    local.port(),
                    local.port().wrapping_add(1)
                ));
            }
        }
        Err(StatusCode::UnsupportedTransport)
    }

    fn local_ip(&self) -> std::net::IpAddr {
        if self.peer.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        }
    }

    async fn play(&mut self, req: &Request<Vec<u8>>, out: &Out) -> Result<String, StatusCode> {
        let Some(sink) = self.sink.take() else {
            return Err(StatusCode::MethodNotValidInThisState);
        };
        self.stop();
        let cam = &self.shared.camera;
        let mut rx = cam.subscribe();
        cam.request_idr();
        // Wait for the IDR we asked for, so RTP-Info names exactly the first packet we send.
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match rx.recv().await {
                    Ok(f) if f.key => return Some(f),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or(StatusCode::ServiceUnavailable)?;
        let fps = u64::from(cam.settings.fps);
        let mut pk = Packetizer { seq: rand::random::<u16>(), ssrc: rand::random(), ts_base: rand::random(), fps };
        let url = req.request_uri().map(|u| u.as_str().trim_end_matches('/').to_owned()).unwrap_or_default();
        let track = if url.ends_with("trackID=0") { url } else { format!("{url}/trackID=0") };
        let info = format!("url={track};seq={};rtptime={}", pk.seq, pk.ts(first.n));
        let out = out.clone();
        self.sender = Some(tokio::spawn(async move {
            let mut frame = first;
            loop {
                let ok = match &sink {
                    Sink::Tcp { channel } => {
                        // One write per frame: all its interleaved packets in one buffer, so a
                        // client wakes once per frame rather than once per packet.
                        let packets = pk.packets(&frame);
                        let mut b = BytesMut::with_capacity(packets.iter().map(|p| p.len() + 4).sum());
                        for p in &packets {
                            b.extend_from_slice(&[b'$', *channel]);
                            b.extend_from_slice(&(p.len() as u16).to_be_bytes());
                            b.extend_from_slice(p);
                        }
                        out.send(b.freeze()).await.is_ok()
                    }
                    Sink::Udp { sock, peer } => {
                        for p in pk.packets(&frame) {
                            // A lost datagram is what UDP means; keep going.
                            let _ = sock.send_to(&p, *peer).await;
                        }
                        true
                    }
                };
                if !ok {
                    return;
                }
                frame = loop {
                    match rx.recv().await {
                        Ok(f) => break f,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!("client fell {n} frames behind; skipping to the next keyframe");
                            loop {
                                match rx.recv().await {
                                    Ok(f) if f.key => break,
                                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                                    Err(broadcast::error::RecvError::Closed) => return,
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                };
            }
        }));
        Ok(info)
    }

    fn authorized(&self, req: &Request<Vec<u8>>) -> bool {
        let Some(auth) = &self.shared.auth else {
            return true;
        };
        let Some(h) = req.header(&headers::AUTHORIZATION) else {
            return false;
        };
        let h = h.as_str().trim();
        if let Some(b) = h.strip_prefix("Basic ") {
            let want = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.user, auth.password));
            return b.trim() == want;
        }
        if let Some(params) = h.strip_prefix("Digest ") {
            let p = parse_auth_params(params);
            let get = |k: &str| p.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
            let (Some(user), Some(nonce), Some(uri), Some(response)) =
                (get("username"), get("nonce"), get("uri"), get("response"))
            else {
                return false;
            };
            if user != auth.user || nonce != self.shared.nonce {
                return false;
            }
            let md5 = |s: String| format!("{:x}", Md5::digest(s.as_bytes()));
            let ha1 = md5(format!("{}:{REALM}:{}", auth.user, auth.password));
            let method: &str = req.method().into();
            let ha2 = md5(format!("{method}:{uri}"));
            let expect = match (get("qop"), get("nc"), get("cnonce")) {
                (Some(qop), Some(nc), Some(cnonce)) => md5(format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")),
                _ => md5(format!("{ha1}:{nonce}:{ha2}")),
            };
            return response.eq_ignore_ascii_case(&expect);
        }
        false
    }
}

/// Splits `a="b", c=d` into pairs (the Authorization header's parameter list).
fn parse_auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().trim_start_matches(',').trim().to_owned();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_owned();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((name, value));
    }
    out
}

fn serialize(resp: &Response<Vec<u8>>) -> Bytes {
    let mut v = Vec::with_capacity(256 + resp.body().len());
    // Writing into a Vec cannot fail.
    let _ = resp.write(&mut v);
    Bytes::from(v)
}

/// RTP packetisation state of one client.
struct Packetizer {
    seq: u16,
    ssrc: u32,
    ts_base: u32,
    fps: u64,
}

impl Packetizer {
    fn ts(&self, n: u64) -> u32 {
        self.ts_base.wrapping_add((n * 90_000 / self.fps) as u32)
    }

    fn header(&mut self, ts: u32, marker: bool) -> Vec<u8> {
        let mut h = Vec::with_capacity(MAX_RTP_PAYLOAD + 14);
        h.push(0x80);
        h.push(96 | if marker { 0x80 } else { 0 });
        h.extend_from_slice(&self.seq.to_be_bytes());
        h.extend_from_slice(&ts.to_be_bytes());
        h.extend_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        h
    }

    /// RFC 6184 packets for one access unit: single NAL units, FU-A for large ones.
    fn packets(&mut self, f: &EncodedFrame) -> Vec<Vec<u8>> {
        let ts = self.ts(f.n);
        let mut out = Vec::new();
        let nals: Vec<&Bytes> = f.nals.iter().filter(|n| !n.is_empty()).collect();
        for (i, nal) in nals.iter().enumerate() {
            let last_nal = i + 1 == nals.len();
            if nal.len() <= MAX_RTP_PAYLOAD {
                let mut p = self.header(ts, last_nal);
                p.extend_from_slice(nal);
                out.push(p);
                continue;
            }
            let indicator = (nal[0] & 0xe0) | 28;
            let typ = nal[0] & 0x1f;
            let body = &nal[1..];
            let chunks: Vec<&[u8]> = body.chunks(MAX_RTP_PAYLOAD - 2).collect();
            for (j, c) in chunks.iter().enumerate() {
                let (start, end) = (j == 0, j + 1 == chunks.len());
                let mut p = self.header(ts, last_nal && end);
                p.push(indicator);
                p.push(typ | if start { 0x80 } else { 0 } | if end { 0x40 } else { 0 });
                p.extend_from_slice(c);
                out.push(p);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_params_parse() {
        let p = parse_auth_params(
            r#"username="admin", realm="openva", nonce="abc", uri="rtsp://h/x", response="0123", qop=auth, nc=00000001"#,
        );
        assert_eq!(p.len(), 7);
        assert_eq!(p[0], ("username".into(), "admin".into()));
        assert_eq!(p[5], ("qop".into(), "auth".into()));
        assert_eq!(p[6], ("nc".into(), "00000001".into()));
    }

    #[test]
    fn fu_a_splits_large_nals() {
        let mut pk = Packetizer { seq: 65535, ssrc: 1, ts_base: 0, fps: 25 };
        let f = EncodedFrame {
            n: 1,
            t_ms: 0,
            key: true,
            nals: vec![Bytes::from(vec![0x65; 3000]), Bytes::from_static(&[0x41, 1])],
        };
        let ps = pk.packets(&f);
        assert_eq!(ps.len(), 4);
        assert_eq!(ps[0][12] & 0x1f, 28);
        assert_eq!(ps[0][13] & 0x80, 0x80);
        assert_eq!(ps[2][13] & 0x40, 0x40);
        assert_eq!(ps[3][1] & 0x80, 0x80); // marker on the last packet only
        assert_eq!(ps[2][1] & 0x80, 0);
        assert_eq!(u32::from_be_bytes([ps[0][4], ps[0][5], ps[0][6], ps[0][7]]), 3600);
    }
}
