//! The EPMD wire protocol as pure data: requests and replies, with their encoders and
//! decoders. Nothing here touches a socket, so every byte layout can be tested (and fuzzed)
//! in isolation, and the daemon and the client share one definition of the protocol.
//!
//! Layouts follow OTP's `erts/epmd` (see `DESIGN.md`, "Port mapper"): a request is a u16
//! big-endian length followed by a tag byte and its body; replies carry no length prefix and
//! are delimited by the server closing the connection (except the ALIVE2 reply, whose
//! connection stays open for as long as the node is registered).

use bytes::{Buf, BufMut, BytesMut};
use thiserror::Error;

/// Longest node name epmd accepts, in characters (an atom's limit).
pub const MAX_NAME_CHARS: usize = 255;
/// Longest name or Extra field in bytes: 255 characters of up to 4 UTF-8 bytes each.
pub const MAX_SYMBOL_BYTES: usize = 255 * 4;
/// Largest legal request payload (after the u16 length). epmd's input buffer holds
/// `3 * MAX_SYMBOL_BYTES` bytes including the 2-byte header, and refuses anything that does
/// not fit; we refuse exactly the same requests.
pub const MAX_REQUEST_LEN: usize = 3 * MAX_SYMBOL_BYTES - 3;
/// Fixed part of an ALIVE2_REQ body after the tag: port, type, protocol, highest, lowest, nlen.
const ALIVE2_FIXED: usize = 2 + 1 + 1 + 2 + 2 + 2;
/// The creation epmd puts in a refused registration's reply (a fixed 99, whatever the name).
pub const REFUSED_CREATION: u32 = 99;

/// Request and reply tags, as the bytes epmd uses for them.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// `x`: register a node.
    Alive2Req = b'x',
    /// `y`: registration reply with a 16-bit creation (nodes with Highest < 6).
    Alive2Resp = b'y',
    /// `v`: registration reply with a 32-bit creation (nodes with Highest >= 6).
    Alive2XResp = b'v',
    /// `z`: look a node up by name.
    PortPlease2Req = b'z',
    /// `w`: lookup reply.
    Port2Resp = b'w',
    /// `n`: list registered names.
    NamesReq = b'n',
    /// `d`: list registered and remembered names, with debugging detail.
    DumpReq = b'd',
    /// `k`: stop the daemon.
    KillReq = b'k',
    /// `s`: forcibly unregister one name.
    StopReq = b's',
    /// `N`: every registration in full, in one reply (an extension of `cluster epmd`; OTP's
    /// epmd closes the connection without an answer).
    NodesReq = b'N',
}

impl TryFrom<u8> for Tag {
    type Error = ProtoError;

    fn try_from(byte: u8) -> Result<Self, ProtoError> {
        Ok(match byte {
            b'x' => Tag::Alive2Req,
            b'y' => Tag::Alive2Resp,
            b'v' => Tag::Alive2XResp,
            b'z' => Tag::PortPlease2Req,
            b'w' => Tag::Port2Resp,
            b'n' => Tag::NamesReq,
            b'd' => Tag::DumpReq,
            b'k' => Tag::KillReq,
            b's' => Tag::StopReq,
            b'N' => Tag::NodesReq,
            other => return Err(ProtoError::UnknownTag(other)),
        })
    }
}

/// Everything that can be wrong with bytes claiming to be EPMD protocol.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtoError {
    /// More bytes are needed before the message can be decoded.
    #[error("incomplete message: need more bytes")]
    Incomplete,
    /// The u16 length prefix announced an empty request.
    #[error("empty request")]
    Empty,
    /// The length prefix exceeds the largest legal request.
    #[error("request length {0} exceeds the largest legal request ({MAX_REQUEST_LEN} bytes)")]
    TooLong(usize),
    /// The tag byte names no EPMD message.
    #[error("unknown message tag {0} ({:?})", char::from(*.0))]
    UnknownTag(u8),
    /// A tag that is valid, but not in this direction (a reply where a request was expected).
    #[error("unexpected message tag {0:?}")]
    UnexpectedTag(Tag),
    /// A length field inside the message points past its end.
    #[error("{field} length {len} runs past the end of the message")]
    FieldOverrun {
        /// Which field overran.
        field: &'static str,
        /// The length the field claimed.
        len: usize,
    },
    /// Bytes were left over after the message was decoded.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// A node name is empty, too long, contains NUL, or is not UTF-8.
    #[error("invalid node name: {0}")]
    BadName(NameError),
    /// The Extra field is longer than epmd allows.
    #[error("extra field of {0} bytes is longer than {MAX_SYMBOL_BYTES}")]
    ExtraTooLong(usize),
    /// A well-framed ALIVE2_REQ whose name or Extra epmd reads and then refuses (a name too
    /// long or not UTF-8, an Extra too long). epmd answers it with a refusal (result 1) in the
    /// reply layout the request asked for, instead of closing as it does for a request it
    /// cannot parse; [`ProtoError::alive2_refusal`] gives that reply.
    #[error("registration refused: {reason}")]
    Alive2Refused {
        /// What is wrong: a [`ProtoError::BadName`] or a [`ProtoError::ExtraTooLong`].
        reason: Box<ProtoError>,
        /// Whether the request's Highest version (6 or more) asks for the `v` reply.
        extended: bool,
    },
    /// A text reply (NAMES or DUMP) did not have the expected line format.
    #[error("malformed names line: {0:?}")]
    BadNamesLine(String),
    /// A short fixed reply (KILL or STOP) had unexpected content.
    #[error("unexpected reply {0:?}")]
    BadReply(String),
}

impl ProtoError {
    /// The reply epmd gives to this malformed request, when it gives one: only an ALIVE2_REQ
    /// refused for its name or Extra is answered (`y`/`v` with result 1 and creation 99); any
    /// other malformed request is closed without a word.
    pub fn alive2_refusal(&self) -> Option<Alive2Reply> {
        match self {
            ProtoError::Alive2Refused { extended, .. } => Some(Alive2Reply {
                result: 1,
                creation: REFUSED_CREATION,
                extended: *extended,
            }),
            _ => None,
        }
    }
}

/// What is wrong with a node name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NameError {
    /// No bytes at all.
    #[error("empty")]
    Empty,
    /// A NUL byte (epmd would cut the name there).
    #[error("contains a NUL byte")]
    Nul,
    /// Not valid UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// More characters than an atom holds.
    #[error("{0} characters, longer than {MAX_NAME_CHARS}")]
    TooLong(usize),
}

/// What kind of node registered: visible to `nodes()` or hidden. Other values are
/// carried through unchanged, as epmd does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// 77 (`M`): a normal, visible Erlang node.
    Normal,
    /// 72 (`H`): a hidden node (C nodes, CLI tools).
    Hidden,
    /// Any other byte, kept verbatim.
    Other(u8),
}

impl NodeType {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            NodeType::Normal => 77,
            NodeType::Hidden => 72,
            NodeType::Other(b) => b,
        }
    }
}

impl From<u8> for NodeType {
    fn from(b: u8) -> Self {
        match b {
            77 => NodeType::Normal,
            72 => NodeType::Hidden,
            other => NodeType::Other(other),
        }
    }
}

impl std::fmt::Display for NodeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeType::Normal => f.write_str("normal"),
            NodeType::Hidden => f.write_str("hidden"),
            NodeType::Other(b) => write!(f, "type {b}"),
        }
    }
}

/// A node's registration: what ALIVE2_REQ carries and PORT2_RESP returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node's distribution listen port.
    pub port: u16,
    /// Visible or hidden.
    pub node_type: NodeType,
    /// 0 for TCP/IPv4.
    pub protocol: u8,
    /// Highest distribution version the node speaks (6 for OTP 23+).
    pub highest: u16,
    /// Lowest distribution version the node speaks.
    pub lowest: u16,
    /// The name part before `@`.
    pub name: String,
    /// Free-form bytes returned verbatim; `cluster` nodes put their role here.
    pub extra: Vec<u8>,
}

impl NodeEntry {
    /// A visible node speaking distribution versions 5 and 6, as OTP 25 registers.
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        NodeEntry {
            port,
            node_type: NodeType::Normal,
            protocol: 0,
            highest: 6,
            lowest: 5,
            name: name.into(),
            extra: Vec::new(),
        }
    }

    /// The Extra field as text when it is printable UTF-8.
    pub fn extra_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.extra)
            .ok()
            .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.port);
        out.put_u8(self.node_type.to_byte());
        out.put_u8(self.protocol);
        out.put_u16(self.highest);
        out.put_u16(self.lowest);
        out.put_u16(self.name.len() as u16);
        out.put_slice(self.name.as_bytes());
        out.put_u16(self.extra.len() as u16);
        out.put_slice(&self.extra);
    }

    /// Decodes an entry as ALIVE2_REQ and PORT2_RESP carry it. Both length fields are checked
    /// against the message before the name and Extra are judged, as epmd does, so that a
    /// request it cannot parse is told apart from one it parses and refuses.
    fn decode_body(body: &mut &[u8]) -> Result<Self, ProtoError> {
        if body.len() < ALIVE2_FIXED {
            return Err(ProtoError::Incomplete);
        }
        let port = body.get_u16();
        let node_type = NodeType::from(body.get_u8());
        let protocol = body.get_u8();
        let highest = body.get_u16();
        let lowest = body.get_u16();
        let name = take_counted(body, "name")?;
        if body.len() < 2 {
            return Err(ProtoError::Incomplete);
        }
        let extra = take_counted(body, "extra")?;
        let name = validate_name(name)?.to_owned();
        if extra.len() > MAX_SYMBOL_BYTES {
            return Err(ProtoError::ExtraTooLong(extra.len()));
        }
        Ok(NodeEntry {
            port,
            node_type,
            protocol,
            highest,
            lowest,
            name,
            extra: extra.to_vec(),
        })
    }
}

/// Reads a u16 length and that many bytes.
fn take_counted<'a>(body: &mut &'a [u8], field: &'static str) -> Result<&'a [u8], ProtoError> {
    if body.len() < 2 {
        return Err(ProtoError::Incomplete);
    }
    let len = body.get_u16() as usize;
    if len > body.len() {
        return Err(ProtoError::FieldOverrun { field, len });
    }
    let (value, rest) = body.split_at(len);
    *body = rest;
    Ok(value)
}

/// Checks a node name the way epmd does: 1..=255 UTF-8 characters and no NUL.
pub fn validate_name(bytes: &[u8]) -> Result<&str, ProtoError> {
    if bytes.is_empty() {
        return Err(ProtoError::BadName(NameError::Empty));
    }
    if bytes.contains(&0) {
        return Err(ProtoError::BadName(NameError::Nul));
    }
    let name = std::str::from_utf8(bytes).map_err(|_| ProtoError::BadName(NameError::NotUtf8))?;
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(ProtoError::BadName(NameError::TooLong(chars)));
    }
    Ok(name)
}

/// Sorts a failed ALIVE2_REQ decode into what epmd closes on (a short or overrunning request,
/// an empty name, a NUL in the name) and what it reads and refuses with a reply.
fn alive2_error(err: ProtoError, extended: bool) -> ProtoError {
    match err {
        ProtoError::BadName(NameError::TooLong(_) | NameError::NotUtf8)
        | ProtoError::ExtraTooLong(_) => ProtoError::Alive2Refused {
            reason: Box::new(err),
            extended,
        },
        other => other,
    }
}

/// A request from a client to the port mapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// ALIVE2_REQ: register this node for as long as the connection stays open.
    Alive2(NodeEntry),
    /// PORT_PLEASE2_REQ: where does this name listen?
    PortPlease2 {
        /// The name part before `@`.
        name: String,
    },
    /// NAMES_REQ: every registered name and port.
    Names,
    /// DUMP_REQ: registered and remembered names with internal detail.
    Dump,
    /// KILL_REQ: stop the daemon.
    Kill,
    /// STOP_REQ: unregister this name and close its connection.
    Stop {
        /// The name part before `@`.
        name: String,
    },
    /// NODES (our extension): every registration in full, so that `cluster names` needs one
    /// connection instead of one per node.
    Nodes,
}

impl Request {
    /// Looks at a buffer and, when it holds a whole request, returns its total length
    /// including the 2-byte prefix. Refuses a declared length that no legal request has, so
    /// the caller never buffers more than [`MAX_REQUEST_LEN`] bytes.
    pub fn check(buf: &[u8]) -> Result<usize, ProtoError> {
        if buf.len() < 2 {
            return Err(ProtoError::Incomplete);
        }
        let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
        if len == 0 {
            return Err(ProtoError::Empty);
        }
        if len > MAX_REQUEST_LEN {
            return Err(ProtoError::TooLong(len));
        }
        if buf.len() < 2 + len {
            return Err(ProtoError::Incomplete);
        }
        Ok(2 + len)
    }

    /// Decodes one request payload (the bytes after the u16 length).
    pub fn decode(payload: &[u8]) -> Result<Request, ProtoError> {
        let (&tag, mut body) = payload.split_first().ok_or(ProtoError::Empty)?;
        let request = match Tag::try_from(tag)? {
            Tag::Alive2Req => {
                // Highest sits at bytes 4..6 of the body; it picks the reply layout.
                let extended = body
                    .get(4..6)
                    .is_some_and(|h| u16::from_be_bytes([h[0], h[1]]) >= 6);
                let entry =
                    NodeEntry::decode_body(&mut body).map_err(|e| alive2_error(e, extended))?;
                if !body.is_empty() {
                    return Err(ProtoError::Trailing(body.len()));
                }
                Request::Alive2(entry)
            }
            Tag::PortPlease2Req => Request::PortPlease2 {
                name: decode_trailing_name(body)?,
            },
            Tag::NamesReq => Request::Names,
            Tag::NodesReq => Request::Nodes,
            Tag::DumpReq => Request::Dump,
            Tag::KillReq => Request::Kill,
            Tag::StopReq => Request::Stop {
                name: decode_trailing_name(body)?,
            },
            other => return Err(ProtoError::UnexpectedTag(other)),
        };
        Ok(request)
    }

    /// Appends the request, with its length prefix, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u16(0);
        match self {
            Request::Alive2(entry) => {
                out.put_u8(Tag::Alive2Req as u8);
                entry.encode_body(out);
            }
            Request::PortPlease2 { name } => {
                out.put_u8(Tag::PortPlease2Req as u8);
                out.put_slice(name.as_bytes());
            }
            Request::Names => out.put_u8(Tag::NamesReq as u8),
            Request::Nodes => out.put_u8(Tag::NodesReq as u8),
            Request::Dump => out.put_u8(Tag::DumpReq as u8),
            Request::Kill => out.put_u8(Tag::KillReq as u8),
            Request::Stop { name } => {
                out.put_u8(Tag::StopReq as u8);
                out.put_slice(name.as_bytes());
            }
        }
        let len = (out.len() - start - 2) as u16;
        out[start..start + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// The request as bytes ready to write.
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out
    }
}

/// A name that runs to the end of the request; old clients append a NUL, which epmd skips.
fn decode_trailing_name(body: &[u8]) -> Result<String, ProtoError> {
    let body = body.strip_suffix(&[0]).unwrap_or(body);
    Ok(validate_name(body)?.to_owned())
}

/// The reply to ALIVE2_REQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alive2Reply {
    /// 0 on success; 1 when the name is taken or the request was refused.
    pub result: u8,
    /// The creation number handed to the node.
    pub creation: u32,
    /// `v` with a 32-bit creation, for nodes whose Highest is at least 6; otherwise `y`
    /// with 16 bits.
    pub extended: bool,
}

impl Alive2Reply {
    /// Appends the reply to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        if self.extended {
            out.put_u8(Tag::Alive2XResp as u8);
            out.put_u8(self.result);
            out.put_u32(self.creation);
        } else {
            out.put_u8(Tag::Alive2Resp as u8);
            out.put_u8(self.result);
            out.put_u16(self.creation as u16);
        }
    }

    /// Decodes a whole reply. Returns `Incomplete` while bytes are missing.
    pub fn decode(buf: &[u8]) -> Result<Alive2Reply, ProtoError> {
        let (&tag, mut body) = buf.split_first().ok_or(ProtoError::Incomplete)?;
        let extended = match Tag::try_from(tag)? {
            Tag::Alive2XResp => true,
            Tag::Alive2Resp => false,
            other => return Err(ProtoError::UnexpectedTag(other)),
        };
        let need = if extended { 5 } else { 3 };
        if body.len() < need {
            return Err(ProtoError::Incomplete);
        }
        if body.len() > need {
            return Err(ProtoError::Trailing(body.len() - need));
        }
        let result = body.get_u8();
        let creation = if extended {
            body.get_u32()
        } else {
            u32::from(body.get_u16())
        };
        Ok(Alive2Reply {
            result,
            creation,
            extended,
        })
    }
}

/// Encodes a PORT2_RESP: the node's entry, or result 1 when the name is not registered.
pub fn encode_port2_reply(entry: Option<&NodeEntry>, out: &mut BytesMut) {
    out.put_u8(Tag::Port2Resp as u8);
    match entry {
        Some(entry) => {
            out.put_u8(0);
            entry.encode_body(out);
        }
        None => out.put_u8(1),
    }
}

/// Decodes a whole PORT2_RESP (the server closes the connection after it).
pub fn decode_port2_reply(buf: &[u8]) -> Result<Option<NodeEntry>, ProtoError> {
    let (&tag, mut body) = buf.split_first().ok_or(ProtoError::Incomplete)?;
    match Tag::try_from(tag)? {
        Tag::Port2Resp => {}
        other => return Err(ProtoError::UnexpectedTag(other)),
    }
    let result = *body.first().ok_or(ProtoError::Incomplete)?;
    body.advance(1);
    if result != 0 {
        return Ok(None);
    }
    let entry = NodeEntry::decode_body(&mut body)?;
    if !body.is_empty() {
        return Err(ProtoError::Trailing(body.len()));
    }
    Ok(Some(entry))
}

/// Encodes a NODES reply: the tag, then every entry as PORT2_RESP carries one.
pub fn encode_nodes_reply<'a>(entries: impl Iterator<Item = &'a NodeEntry>, out: &mut BytesMut) {
    out.put_u8(Tag::NodesReq as u8);
    for e in entries {
        e.encode_body(out);
    }
}

/// Decodes a whole NODES reply (the server closes the connection after it).
pub fn decode_nodes_reply(buf: &[u8]) -> Result<Vec<NodeEntry>, ProtoError> {
    let (&tag, mut body) = buf.split_first().ok_or(ProtoError::Incomplete)?;
    match Tag::try_from(tag)? {
        Tag::NodesReq => {}
        other => return Err(ProtoError::UnexpectedTag(other)),
    }
    let mut entries = Vec::new();
    while !body.is_empty() {
        entries.push(NodeEntry::decode_body(&mut body)?);
    }
    Ok(entries)
}

/// One line of a NAMES reply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NameLine {
    /// The name part before `@`.
    pub name: String,
    /// The node's distribution port.
    pub port: u16,
}

/// Encodes the NAMES reply body that follows the 4-byte port: one
/// `name <n> at port <p>\n` line per node, exactly as `erl_epmd` parses it.
pub fn encode_names_line(line: &NameLine, out: &mut BytesMut) {
    out.put_slice(format!("name {} at port {}\n", line.name, line.port).as_bytes());
}

/// A decoded NAMES reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesReply {
    /// The port the port mapper says it listens on.
    pub epmd_port: u32,
    /// The registered names, in the order the server sent them.
    pub names: Vec<NameLine>,
}

/// Decodes a whole NAMES reply (everything the server sent before closing).
pub fn decode_names_reply(buf: &[u8]) -> Result<NamesReply, ProtoError> {
    if buf.len() < 4 {
        return Err(ProtoError::Incomplete);
    }
    let (port, text) = buf.split_at(4);
    let epmd_port = u32::from_be_bytes([port[0], port[1], port[2], port[3]]);
    let text = String::from_utf8_lossy(text);
    let names = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(parse_names_line)
        .collect::<Result<_, _>>()?;
    Ok(NamesReply { epmd_port, names })
}

fn parse_names_line(line: &str) -> Result<NameLine, ProtoError> {
    let bad = || ProtoError::BadNamesLine(line.to_owned());
    let rest = line.strip_prefix("name ").ok_or_else(bad)?;
    let (name, port) = rest.rsplit_once(" at port ").ok_or_else(bad)?;
    let port = port.trim().parse().map_err(|_| bad())?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok(NameLine {
        name: name.to_owned(),
        port,
    })
}

/// One line of a DUMP reply: a live registration or a remembered (unregistered) name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DumpLine {
    /// True for a live registration, false for an old/unused name.
    pub active: bool,
    /// The name part before `@`.
    pub name: String,
    /// The node's distribution port (its last one, for an old name).
    pub port: u16,
    /// The daemon's handle on the registration's connection (epmd's file descriptor; our
    /// connection number).
    pub fd: u64,
}

impl DumpLine {
    /// Appends the line exactly as epmd 25 writes it, trailing NUL included (epmd sends each
    /// line with its C string terminator, and `epmd -dump` copies them all to its stdout).
    /// An old name's line has a space before the newline, as epmd's has.
    pub fn encode(&self, out: &mut BytesMut) {
        let line = if self.active {
            format!(
                "active name     <{}> at port {}, fd = {}\n\0",
                self.name, self.port, self.fd
            )
        } else {
            format!(
                "old/unused name <{}>, port = {}, fd = {} \n\0",
                self.name, self.port, self.fd
            )
        };
        out.put_slice(line.as_bytes());
    }

    fn parse(line: &str) -> Result<DumpLine, ProtoError> {
        let bad = || ProtoError::BadNamesLine(line.to_owned());
        let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        if let Some(rest) = line.strip_prefix("active name     <") {
            let (name, rest) = rest.rsplit_once("> at port ").ok_or_else(bad)?;
            let (port, fd) = rest.split_once(", fd = ").ok_or_else(bad)?;
            return Ok(DumpLine {
                active: true,
                name: name.to_owned(),
                port: u16::try_from(number(port)?).map_err(|_| bad())?,
                fd: number(fd)?,
            });
        }
        let rest = line.strip_prefix("old/unused name <").ok_or_else(bad)?;
        let (name, rest) = rest.rsplit_once(">, port = ").ok_or_else(bad)?;
        let (port, fd) = rest.split_once(", fd = ").ok_or_else(bad)?;
        Ok(DumpLine {
            active: false,
            name: name.to_owned(),
            port: u16::try_from(number(port)?).map_err(|_| bad())?,
            fd: number(fd)?,
        })
    }
}

/// A decoded DUMP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpReply {
    /// The port the port mapper says it listens on.
    pub epmd_port: u32,
    /// The text after the port, byte for byte as sent (NULs included), which is what
    /// `epmd -dump` prints after its header line.
    pub text: Vec<u8>,
}

impl DumpReply {
    /// The lines of the text, parsed (live names first, newest first, then old names in the
    /// order they unregistered, as epmd lists them).
    pub fn lines(&self) -> Result<Vec<DumpLine>, ProtoError> {
        String::from_utf8_lossy(&self.text)
            .split(['\n', '\0'])
            .filter(|l| !l.trim().is_empty())
            .map(DumpLine::parse)
            .collect()
    }
}

/// Decodes a whole DUMP reply (everything the server sent before closing).
pub fn decode_dump_reply(buf: &[u8]) -> Result<DumpReply, ProtoError> {
    if buf.len() < 4 {
        return Err(ProtoError::Incomplete);
    }
    let (port, text) = buf.split_at(4);
    Ok(DumpReply {
        epmd_port: u32::from_be_bytes([port[0], port[1], port[2], port[3]]),
        text: text.to_vec(),
    })
}

/// The fixed replies of KILL_REQ and STOP_REQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlReply {
    /// KILL accepted: `OK`.
    Ok,
    /// KILL refused because nodes are registered: `NO`.
    No,
    /// STOP unregistered the name: `STOPPED`.
    Stopped,
    /// STOP named nothing registered: `NOEXIST`.
    NoExist,
}

impl ControlReply {
    /// The bytes on the wire.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            ControlReply::Ok => b"OK",
            ControlReply::No => b"NO",
            ControlReply::Stopped => b"STOPPED",
            ControlReply::NoExist => b"NOEXIST",
        }
    }

    /// Decodes a whole reply.
    pub fn decode(buf: &[u8]) -> Result<ControlReply, ProtoError> {
        Ok(match buf {
            b"OK" => ControlReply::Ok,
            b"NO" => ControlReply::No,
            b"STOPPED" => ControlReply::Stopped,
            b"NOEXIST" => ControlReply::NoExist,
            other => return Err(ProtoError::BadReply(String::from_utf8_lossy(other).into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> NodeEntry {
        NodeEntry {
            port: 45_123,
            node_type: NodeType::Hidden,
            protocol: 0,
            highest: 6,
            lowest: 5,
            name: "gate1".into(),
            extra: b"gate".to_vec(),
        }
    }

    fn round_trip(req: Request) {
        let bytes = req.to_bytes();
        let total = Request::check(&bytes).expect("complete");
        assert_eq!(total, bytes.len());
        assert_eq!(Request::decode(&bytes[2..]).expect("decodes"), req);
    }

    #[test]
    fn every_request_round_trips() {
        round_trip(Request::Alive2(entry()));
        round_trip(Request::Alive2(NodeEntry::new("ünïcode", 1)));
        round_trip(Request::PortPlease2 { name: "a".into() });
        round_trip(Request::Names);
        round_trip(Request::Dump);
        round_trip(Request::Kill);
        round_trip(Request::Stop { name: "b".into() });
    }

    #[test]
    fn alive2_layout_matches_otp() {
        let bytes = Request::Alive2(NodeEntry::new("a", 0x1234)).to_bytes();
        assert_eq!(
            &bytes[..],
            &[0, 14, b'x', 0x12, 0x34, 77, 0, 0, 6, 0, 5, 0, 1, b'a', 0, 0]
        );
    }

    #[test]
    fn every_reply_round_trips() {
        for reply in [
            Alive2Reply {
                result: 0,
                creation: 0xdead_beef,
                extended: true,
            },
            Alive2Reply {
                result: 1,
                creation: 3,
                extended: false,
            },
        ] {
            let mut out = BytesMut::new();
            reply.encode(&mut out);
            assert_eq!(Alive2Reply::decode(&out), Ok(reply));
        }

        let mut out = BytesMut::new();
        encode_port2_reply(Some(&entry()), &mut out);
        assert_eq!(decode_port2_reply(&out), Ok(Some(entry())));
        let mut out = BytesMut::new();
        encode_port2_reply(None, &mut out);
        assert_eq!(&out[..], &[b'w', 1]);
        assert_eq!(decode_port2_reply(&out), Ok(None));

        let mut out = BytesMut::new();
        out.put_u32(4369);
        let lines = vec![
            NameLine {
                name: "a".into(),
                port: 1,
            },
            NameLine {
                name: "b c".into(),
                port: 65535,
            },
        ];
        for l in &lines {
            encode_names_line(l, &mut out);
        }
        assert_eq!(
            decode_names_reply(&out),
            Ok(NamesReply {
                epmd_port: 4369,
                names: lines
            })
        );

        for r in [
            ControlReply::Ok,
            ControlReply::No,
            ControlReply::Stopped,
            ControlReply::NoExist,
        ] {
            assert_eq!(ControlReply::decode(r.as_bytes()), Ok(r));
        }
    }

    #[test]
    fn truncated_requests_are_incomplete_or_rejected() {
        let bytes = Request::Alive2(entry()).to_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(Request::check(&bytes[..cut]), Err(ProtoError::Incomplete));
        }
        // A body shortened under an honest length is a malformed request, never a panic.
        for cut in 1..bytes.len() - 2 {
            assert!(Request::decode(&bytes[2..2 + cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let too_long = (MAX_REQUEST_LEN + 1) as u16;
        assert_eq!(
            Request::check(&too_long.to_be_bytes()),
            Err(ProtoError::TooLong(MAX_REQUEST_LEN + 1))
        );
        assert_eq!(Request::check(&[0, 0]), Err(ProtoError::Empty));
        let max = (MAX_REQUEST_LEN as u16).to_be_bytes();
        assert_eq!(Request::check(&max), Err(ProtoError::Incomplete));
    }

    #[test]
    fn unknown_and_reply_tags_are_rejected() {
        assert_eq!(Request::decode(b"Q"), Err(ProtoError::UnknownTag(b'Q')));
        assert_eq!(
            Request::decode(b"w\x00"),
            Err(ProtoError::UnexpectedTag(Tag::Port2Resp))
        );
        assert_eq!(
            Alive2Reply::decode(b"w\x00\x00\x00"),
            Err(ProtoError::UnexpectedTag(Tag::Port2Resp))
        );
    }

    #[test]
    fn malformed_fields_are_named() {
        // Name length runs past the end.
        let mut b = BytesMut::new();
        b.put_slice(&[b'x', 0, 1, 77, 0, 0, 6, 0, 5, 0, 50, b'a']);
        assert_eq!(
            Request::decode(&b),
            Err(ProtoError::FieldOverrun {
                field: "name",
                len: 50
            })
        );
        // NUL in a name, empty name, invalid UTF-8.
        assert!(matches!(
            Request::decode(b"za\0b"),
            Err(ProtoError::BadName(_))
        ));
        assert!(matches!(Request::decode(b"z"), Err(ProtoError::BadName(_))));
        assert!(matches!(
            Request::decode(b"z\xff\xfe"),
            Err(ProtoError::BadName(_))
        ));
        // A trailing NUL after a lookup name is tolerated, as epmd does.
        assert_eq!(
            Request::decode(b"zabc\0"),
            Ok(Request::PortPlease2 { name: "abc".into() })
        );
        // Over-long name.
        let long = "n".repeat(256);
        assert!(matches!(
            Request::decode(format!("z{long}").as_bytes()),
            Err(ProtoError::BadName(_))
        ));
        // Trailing garbage after ALIVE2.
        let mut bytes = Request::Alive2(entry()).to_bytes().to_vec();
        bytes.push(9);
        assert_eq!(Request::decode(&bytes[2..]), Err(ProtoError::Trailing(1)));
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert_eq!(decode_names_reply(&[0, 0]), Err(ProtoError::Incomplete));
        assert!(matches!(
            decode_names_reply(b"\0\0\x11\x11garbage\n"),
            Err(ProtoError::BadNamesLine(_))
        ));
        assert!(matches!(
            decode_names_reply(b"\0\0\x11\x11name x at port 99999\n"),
            Err(ProtoError::BadNamesLine(_))
        ));
        assert_eq!(decode_port2_reply(b"w"), Err(ProtoError::Incomplete));
        assert_eq!(Alive2Reply::decode(b"v\0\0"), Err(ProtoError::Incomplete));
        assert!(ControlReply::decode(b"MAYBE").is_err());
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes() {
        // A cheap, deterministic stand-in for the fuzz target that runs on every `cargo test`.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let tags = b"xzndksvwyN?";
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = buf.first_mut() {
                *first = tags[(next() % tags.len() as u64) as usize];
            }
            let _ = Request::decode(&buf);
            let _ = Request::check(&buf);
            let _ = decode_port2_reply(&buf);
            let _ = decode_names_reply(&buf);
            let _ = decode_nodes_reply(&buf);
            let _ = Alive2Reply::decode(&buf);
            if let Ok(dump) = decode_dump_reply(&buf) {
                let _ = dump.lines();
            }
        }
    }

    #[test]
    fn nodes_replies_round_trip_and_refuse_garbage() {
        let mut hidden = NodeEntry::new("cli", 4001);
        hidden.node_type = NodeType::Hidden;
        let mut gate = NodeEntry::new("gate1", 4000);
        gate.extra = b"gate".to_vec();
        let mut out = BytesMut::new();
        encode_nodes_reply([&gate, &hidden].into_iter(), &mut out);
        assert_eq!(decode_nodes_reply(&out).unwrap(), vec![gate, hidden]);
        let mut empty = BytesMut::new();
        encode_nodes_reply(std::iter::empty(), &mut empty);
        assert_eq!(decode_nodes_reply(&empty).unwrap(), vec![]);
        assert_eq!(decode_nodes_reply(&[]), Err(ProtoError::Incomplete));
        assert!(
            decode_nodes_reply(&out[..out.len() - 1]).is_err(),
            "truncated"
        );
        assert!(matches!(
            decode_nodes_reply(b"w\0"),
            Err(ProtoError::UnexpectedTag(Tag::Port2Resp))
        ));
        assert_eq!(
            Request::decode(b"N").unwrap(),
            Request::Nodes,
            "the request is the bare tag"
        );
    }

    /// An ALIVE2_REQ body with the given Highest, name and Extra, unchecked.
    fn alive2_payload(highest: u16, name: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8(b'x');
        b.put_u16(1000);
        b.put_u8(77);
        b.put_u8(0);
        b.put_u16(highest);
        b.put_u16(5);
        b.put_u16(name.len() as u16);
        b.put_slice(name);
        b.put_u16(extra.len() as u16);
        b.put_slice(extra);
        b.to_vec()
    }

    #[test]
    fn alive2_names_epmd_refuses_get_a_refusal_reply() {
        // Observed from OTP 25's epmd here: a 600-byte name, a 256-character name, a name
        // that is not UTF-8 and a 1,100-byte Extra are answered `y 1 0 99` (Highest 5) or
        // `v 1 0 0 0 99` (Highest 6).
        for (highest, wire) in [
            (5, &b"y\x01\x00\x63"[..]),
            (6, &b"v\x01\x00\x00\x00\x63"[..]),
        ] {
            for (name, extra) in [
                (vec![b'a'; 600], vec![]),
                (vec![b'a'; 256], vec![]),
                (vec![0xff, 0xfe], vec![]),
                (b"ex".to_vec(), vec![b'e'; 1100]),
            ] {
                let err = Request::decode(&alive2_payload(highest, &name, &extra)).unwrap_err();
                let reply = err.alive2_refusal().unwrap_or_else(|| panic!("{err}"));
                let mut out = BytesMut::new();
                reply.encode(&mut out);
                assert_eq!(&out[..], wire, "{err}");
            }
        }
        assert!(matches!(
            Request::decode(&alive2_payload(6, &[b'a'; 600], &[])),
            Err(ProtoError::Alive2Refused { reason, extended: true })
                if *reason == ProtoError::BadName(NameError::TooLong(600))
        ));
        // The longest name and Extra epmd takes are still fine.
        assert!(
            Request::decode(&alive2_payload(6, &[b'a'; 255], &[b'e'; MAX_SYMBOL_BYTES])).is_ok()
        );
    }

    #[test]
    fn alive2_requests_epmd_cannot_parse_get_no_reply() {
        // epmd closes these without a word: an empty name with no Extra (too short), a NUL in
        // the name, an Extra length past the end, and a name too long whose Extra overruns.
        let mut overrun = alive2_payload(6, b"ov", b"");
        let at = overrun.len() - 2;
        overrun[at..].copy_from_slice(&50u16.to_be_bytes());
        let mut long_overrun = alive2_payload(6, &[b'a'; 600], b"");
        let at = long_overrun.len() - 2;
        long_overrun[at..].copy_from_slice(&50u16.to_be_bytes());
        for payload in [
            alive2_payload(6, b"", b""),
            alive2_payload(6, b"foo\0", b""),
            alive2_payload(5, b"a\0b", b""),
            overrun,
            long_overrun,
        ] {
            let err = Request::decode(&payload).unwrap_err();
            assert_eq!(err.alive2_refusal(), None, "{err}");
        }
        // Only ALIVE2 is ever answered that way.
        let err = Request::decode(format!("z{}", "n".repeat(300)).as_bytes()).unwrap_err();
        assert_eq!(err, ProtoError::BadName(NameError::TooLong(300)));
        assert_eq!(err.alive2_refusal(), None);
    }

    #[test]
    fn dump_lines_match_epmd_byte_for_byte() {
        // As OTP 25's epmd sent them here, for a live `a2` and an unregistered `a1`.
        let mut out = BytesMut::new();
        out.put_u32(49_991);
        let lines = [
            DumpLine {
                active: true,
                name: "a2".into(),
                port: 5002,
                fd: 6,
            },
            DumpLine {
                active: false,
                name: "a1".into(),
                port: 5001,
                fd: 5,
            },
        ];
        for l in &lines {
            l.encode(&mut out);
        }
        assert_eq!(
            &out[4..],
            b"active name     <a2> at port 5002, fd = 6\n\0\
              old/unused name <a1>, port = 5001, fd = 5 \n\0"
        );
        let dump = decode_dump_reply(&out).unwrap();
        assert_eq!(dump.epmd_port, 49_991);
        assert_eq!(dump.text, &out[4..]);
        assert_eq!(dump.lines().unwrap(), lines);
        // An empty port mapper sends the port alone.
        let empty = decode_dump_reply(&[0, 0, 0x11, 0x11]).unwrap();
        assert_eq!((empty.epmd_port, empty.lines().unwrap()), (4369, vec![]));
    }

    #[test]
    fn malformed_dump_replies_are_errors() {
        assert_eq!(decode_dump_reply(&[0, 0, 1]), Err(ProtoError::Incomplete));
        for text in [
            &b"garbage\n\0"[..],
            b"active name     <a> at port x, fd = 1\n\0",
            b"active name     <a> at port 70000, fd = 1\n\0",
            b"old/unused name <a>, port = 1\n\0",
        ] {
            let mut buf = vec![0, 0, 0x11, 0x11];
            buf.extend_from_slice(text);
            let dump = decode_dump_reply(&buf).unwrap();
            assert!(
                matches!(dump.lines(), Err(ProtoError::BadNamesLine(_))),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }
}
