//! The server name (SNI) and ALPN protocols a client offers, from its TLS ClientHello.
//!
//! The ClientHello is the first thing a TLS client writes to its socket, in the clear. It may
//! span several TLS records (large post-quantum key shares), so records are joined first.

/// What a ClientHello says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
    /// Offers TLS 1.3 (supported_versions lists 0x0304).
    pub tls13: bool,
}

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// A bounds-checked reader: every read fails instead of panicking past the end.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3).map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }

    /// A length-prefixed block (the prefix read with `len`).
    fn block(&mut self, len: fn(&mut Self) -> Option<usize>) -> Option<Reader<'a>> {
        let n = len(self)?;
        self.take(n).map(|data| Reader { data })
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The handshake bytes carried by the TLS records at the start of `bytes`.
fn handshake_payload(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader { data: bytes };
    let mut payload = Vec::new();
    while !r.is_empty() {
        if r.u8()? != HANDSHAKE {
            break;
        }
        let _version = r.u16()?;
        let len = r.u16()? as usize;
        match r.take(len) {
            Some(fragment) => payload.extend_from_slice(fragment),
            None => {
                // A record cut by the capture: use what arrived.
                payload.extend_from_slice(r.data);
                break;
            }
        }
    }
    (!payload.is_empty()).then_some(payload)
}

/// Parses the ClientHello at the start of what a client first sent. None when the bytes are not
/// one (or too little of it arrived to find anything).
pub fn parse(bytes: &[u8]) -> Option<ClientHello> {
    let payload = handshake_payload(bytes)?;
    let mut r = Reader { data: &payload };
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let mut body = r.block(|r| r.u24())?;
    let _legacy_version = body.u16()?;
    body.take(32)?; // random
    body.block(|r| r.u8().map(usize::from))?; // session id
    body.block(|r| r.u16().map(usize::from))?; // cipher suites
    body.block(|r| r.u8().map(usize::from))?; // compression methods
    let mut hello = ClientHello::default();
    let Some(mut exts) = body.block(|r| r.u16().map(usize::from)) else { return Some(hello) };
    while !exts.is_empty() {
        let Some(kind) = exts.u16() else { break };
        let Some(mut ext) = exts.block(|r| r.u16().map(usize::from)) else { break };
        match kind {
            EXT_SERVER_NAME => {
                let Some(mut list) = ext.block(|r| r.u16().map(usize::from)) else { continue };
                while let Some(name_type) = list.u8() {
                    let Some(name) = list.block(|r| r.u16().map(usize::from)) else { break };
                    if name_type == 0 {
                        hello.server_name = std::str::from_utf8(name.data).ok().map(str::to_owned);
                        break;
                    }
                }
            }
            EXT_ALPN => {
                let Some(mut list) = ext.block(|r| r.u16().map(usize::from)) else { continue };
                while let Some(proto) = list.block(|r| r.u8().map(usize::from)) {
                    hello.alpn.push(String::from_utf8_lossy(proto.data).into_owned());
                }
            }
            EXT_SUPPORTED_VERSIONS => {
                let Some(mut list) = ext.block(|r| r.u8().map(usize::from)) else { continue };
                while let Some(v) = list.u16() {
                    hello.tls13 |= v == 0x0304;
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello with the given SNI and ALPN, as one or two TLS records.
    pub(crate) fn client_hello(sni: &str, alpn: &[&str], split: bool) -> Vec<u8> {
        let mut exts = Vec::new();
        let name = sni.as_bytes();
        let mut sn = vec![0u8];
        sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sn.extend_from_slice(name);
        let mut ext = (sn.len() as u16).to_be_bytes().to_vec();
        ext.extend_from_slice(&sn);
        exts.extend_from_slice(&0u16.to_be_bytes());
        exts.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        exts.extend_from_slice(&ext);
        let mut list = Vec::new();
        for p in alpn {
            list.push(p.len() as u8);
            list.extend_from_slice(p.as_bytes());
        }
        let mut ext = (list.len() as u16).to_be_bytes().to_vec();
        ext.extend_from_slice(&list);
        exts.extend_from_slice(&16u16.to_be_bytes());
        exts.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        exts.extend_from_slice(&ext);
        exts.extend_from_slice(&[0, 43, 0, 3, 2, 3, 4]);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![CLIENT_HELLO, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(&body);
        let record = |frag: &[u8]| {
            let mut r = vec![HANDSHAKE, 3, 1];
            r.extend_from_slice(&(frag.len() as u16).to_be_bytes());
            r.extend_from_slice(frag);
            r
        };
        if split {
            let (a, b) = hs.split_at(hs.len() / 2);
            [record(a), record(b)].concat()
        } else {
            record(&hs)
        }
    }

    #[test]
    fn reads_sni_alpn_and_version() {
        let hello = parse(&client_hello("api.anthropic.com", &["h2", "http/1.1"], false)).unwrap();
        assert_eq!(hello.server_name.as_deref(), Some("api.anthropic.com"));
        assert_eq!(hello.alpn, vec!["h2", "http/1.1"]);
        assert!(hello.tls13);
    }

    #[test]
    fn joins_a_hello_split_over_records() {
        let hello = parse(&client_hello("localhost", &["http/1.1"], true)).unwrap();
        assert_eq!(hello.server_name.as_deref(), Some("localhost"));
    }

    #[test]
    fn anything_else_is_not_a_hello_and_never_panics() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(parse(&[]), None);
        let full = client_hello("x.example", &["h2"], false);
        for cut in 0..full.len() {
            let _ = parse(&full[..cut]);
        }
    }
}
