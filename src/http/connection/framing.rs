//! Where HTTP/1.1 messages begin and end in a byte stream, following RFC 9112 as hyper reads it.
//! Only a head is kept (to learn how its body is framed); bodies are counted, never stored.

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: the message ends with its head.
    Empty,
    Length(u64),
    Chunked,
    /// The body runs until the connection closes (a response without a length, or a tunnel).
    UntilClose,
}

/// What a request head says about its message and the answer it expects.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub framing: Framing,
    /// A `HEAD` request: its answer has a head only, whatever its length headers say.
    pub head_method: bool,
    pub connect_method: bool,
}

/// What a response head means for the request it answers.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseHead {
    /// 1xx other than 101: the final answer still follows.
    Interim,
    Final(Framing),
}

/// The head of HTTP/2's connection preface, which reads as a request head to an HTTP/1 scanner.
pub const HTTP2_PREFACE_HEAD: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";

/// hyper accepts at most this many header fields.
const MAX_HEADER_FIELDS: usize = 100;

/// Something a scanner noticed, at the byte after which it happened.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The first byte of a head (blank lines between messages do not count).
    HeadStarted,
    /// A whole head; the scanner waits for [`Scanner::start_body`].
    HeadEnded(Vec<u8>),
    /// The head grew past the limit before it ended.
    HeadTooLarge,
    BodyEnded,
    /// A chunked body that does not parse; hyper rejects it too.
    Malformed,
}

#[derive(Debug)]
enum Phase {
    /// Between messages; CR and LF here are blank lines a reader ignores.
    Between,
    Head {
        bytes: Vec<u8>,
        line: LineEnd,
    },
    /// A head ended and its body's framing is not yet known.
    AwaitingFraming,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    /// Nothing more is understood (after [`Event::HeadTooLarge`] or [`Event::Malformed`]).
    Lost,
}

/// Progress towards the blank line that ends a head or a trailer section; lines may end in
/// CRLF or in a bare LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    InLine,
    /// Just after a line's LF: a CR or a LF here starts the blank line.
    LineStart,
    /// A CR at the start of a line.
    BlankCr,
}

impl LineEnd {
    /// The next state, or `None` when `byte` completes the blank line.
    fn after(self, byte: u8) -> Option<LineEnd> {
        match (self, byte) {
            (LineEnd::LineStart | LineEnd::BlankCr, b'\n') => None,
            (LineEnd::LineStart, b'\r') => Some(LineEnd::BlankCr),
            (_, b'\n') => Some(LineEnd::LineStart),
            _ => Some(LineEnd::InLine),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size {
        size: u64,
        digits: bool,
    },
    /// A chunk extension, up to the end of the size line.
    Extension {
        size: u64,
    },
    /// The CR that ends a size line was read.
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    Trailers(LineEnd),
}

/// Follows one direction of an HTTP/1 connection, message after message.
#[derive(Debug)]
pub struct Scanner {
    phase: Phase,
    max_head_bytes: usize,
}

impl Scanner {
    pub fn new(max_head_bytes: usize) -> Self {
        Self {
            phase: Phase::Between,
            max_head_bytes,
        }
    }

    /// Between two messages: the last one ended and nothing of the next has arrived.
    pub fn between_messages(&self) -> bool {
        matches!(self.phase, Phase::Between)
    }

    pub fn in_head(&self) -> bool {
        matches!(self.phase, Phase::Head { .. })
    }

    pub fn in_body(&self) -> bool {
        matches!(
            self.phase,
            Phase::Length(_) | Phase::Chunked(_) | Phase::UntilClose
        )
    }

    /// Reads `bytes` up to the first event; returns how many it consumed and the event.
    pub fn feed(&mut self, bytes: &[u8]) -> (usize, Option<Event>) {
        let mut index = 0;
        while index < bytes.len() {
            let rest = bytes.len() - index;
            let byte = bytes[index];
            index += 1;
            match &mut self.phase {
                Phase::Between => {
                    if byte != b'\r' && byte != b'\n' {
                        let mut head = Vec::with_capacity(256.min(self.max_head_bytes));
                        head.push(byte);
                        self.phase = Phase::Head {
                            bytes: head,
                            line: LineEnd::InLine,
                        };
                        return (index, Some(Event::HeadStarted));
                    }
                }
                Phase::Head { bytes: head, line } => {
                    head.push(byte);
                    match line.after(byte) {
                        None => {
                            let head = std::mem::take(head);
                            self.phase = Phase::AwaitingFraming;
                            return (index, Some(Event::HeadEnded(head)));
                        }
                        Some(_) if head.len() >= self.max_head_bytes => {
                            self.phase = Phase::Lost;
                            return (index, Some(Event::HeadTooLarge));
                        }
                        Some(next) => *line = next,
                    }
                }
                Phase::Length(left) => {
                    index += skip(left, rest) - 1;
                    if *left == 0 {
                        self.phase = Phase::Between;
                        return (index, Some(Event::BodyEnded));
                    }
                }
                Phase::Chunked(Chunk::Data { left }) => {
                    index += skip(left, rest) - 1;
                    if *left == 0 {
                        self.phase = Phase::Chunked(Chunk::DataCr);
                    }
                }
                Phase::Chunked(chunk) => match chunk.after(byte) {
                    Ok(Some(next)) => *chunk = next,
                    Ok(None) => {
                        self.phase = Phase::Between;
                        return (index, Some(Event::BodyEnded));
                    }
                    Err(Malformed) => {
                        self.phase = Phase::Lost;
                        return (index, Some(Event::Malformed));
                    }
                },
                Phase::AwaitingFraming | Phase::UntilClose | Phase::Lost => {
                    return (bytes.len(), None);
                }
            }
        }
        (bytes.len(), None)
    }

    /// Follows the body of the head just ended; `true` when the message is already whole.
    pub fn start_body(&mut self, framing: Framing) -> bool {
        self.phase = match framing {
            Framing::Empty | Framing::Length(0) => Phase::Between,
            Framing::Length(length) => Phase::Length(length),
            Framing::Chunked => Phase::Chunked(Chunk::next_size()),
            Framing::UntilClose => Phase::UntilClose,
        };
        self.between_messages()
    }

    /// Stops following the stream: the bytes no longer read as HTTP/1 messages.
    pub fn lose_track(&mut self) {
        self.phase = Phase::Lost;
    }
}

/// Counts off up to `available` bytes of `left` (which is not zero); returns how many.
fn skip(left: &mut u64, available: usize) -> usize {
    let taken = usize::try_from(*left).map_or(available, |left| left.min(available));
    *left -= taken as u64;
    taken
}

/// A chunked body that does not parse.
struct Malformed;

impl Chunk {
    /// The state after `byte`; `None` once the last chunk's trailers end. A chunk's data is
    /// skipped by the scanner, not byte by byte.
    fn after(self, byte: u8) -> Result<Option<Chunk>, Malformed> {
        let next = match self {
            Chunk::Size { size, digits } => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let digit = (byte as char).to_digit(16).ok_or(Malformed)?;
                    let size = size
                        .checked_mul(16)
                        .and_then(|size| size.checked_add(u64::from(digit)))
                        .ok_or(Malformed)?;
                    Chunk::Size { size, digits: true }
                }
                b';' | b' ' | b'\t' if digits => Chunk::Extension { size },
                b'\r' if digits => Chunk::SizeLf { size },
                b'\n' if digits => Chunk::data(size),
                _ => return Err(Malformed),
            },
            Chunk::Extension { size } => match byte {
                b'\r' => Chunk::SizeLf { size },
                b'\n' => Chunk::data(size),
                _ => Chunk::Extension { size },
            },
            Chunk::SizeLf { size } => match byte {
                b'\n' => Chunk::data(size),
                _ => return Err(Malformed),
            },
            Chunk::Data { .. } => return Err(Malformed),
            Chunk::DataCr => match byte {
                b'\r' => Chunk::DataLf,
                b'\n' => Chunk::next_size(),
                _ => return Err(Malformed),
            },
            Chunk::DataLf => match byte {
                b'\n' => Chunk::next_size(),
                _ => return Err(Malformed),
            },
            Chunk::Trailers(line) => match line.after(byte) {
                Some(line) => Chunk::Trailers(line),
                None => return Ok(None),
            },
        };
        Ok(Some(next))
    }

    fn next_size() -> Chunk {
        Chunk::Size {
            size: 0,
            digits: false,
        }
    }

    /// After a size line: the chunk's data, or the trailers after the last (empty) chunk.
    fn data(size: u64) -> Chunk {
        if size == 0 {
            Chunk::Trailers(LineEnd::LineStart)
        } else {
            Chunk::Data { left: size }
        }
    }
}

/// Reads a whole request head as hyper would; `None` when hyper would refuse it.
pub fn parse_request(head: &[u8]) -> Option<RequestHead> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    if !request.parse(head).ok()?.is_complete() {
        return None;
    }
    let method = request.method?;
    let framing = body_framing(request.headers)?.unwrap_or(Framing::Empty);
    Some(RequestHead {
        framing,
        head_method: method == "HEAD",
        connect_method: method == "CONNECT",
    })
}

/// Reads a whole response head written for `request`; `None` when the stream stops being
/// HTTP/1 after it (101 Switching Protocols, or a CONNECT tunnel).
pub fn parse_response(head: &[u8], request: &RequestHead) -> Option<ResponseHead> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut response = httparse::Response::new(&mut fields);
    if !response.parse(head).ok()?.is_complete() {
        return None;
    }
    let code = response.code?;
    match code {
        101 => None,
        100..=199 => Some(ResponseHead::Interim),
        200..=299 if request.connect_method => None,
        204 | 304 => Some(ResponseHead::Final(Framing::Empty)),
        _ if request.head_method => Some(ResponseHead::Final(Framing::Empty)),
        _ => Some(ResponseHead::Final(
            body_framing(response.headers)?.unwrap_or(Framing::UntilClose),
        )),
    }
}

/// The framing that `Transfer-Encoding` or `Content-Length` gives (`Ok(None)`: neither is
/// present); `None` for values hyper refuses.
fn body_framing(fields: &[httparse::Header<'_>]) -> Option<Option<Framing>> {
    let mut chunked = None;
    let mut length = None;
    for field in fields {
        let value = std::str::from_utf8(field.value).ok()?;
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if field.name.eq_ignore_ascii_case("content-length") {
            for item in value.split(',') {
                let item = item.trim();
                if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let parsed: u64 = item.parse().ok()?;
                if length.is_some_and(|known| known != parsed) {
                    return None;
                }
                length = Some(parsed);
            }
        }
    }
    match (chunked, length) {
        (Some(true), _) => Some(Some(Framing::Chunked)),
        (Some(false), _) => None,
        (None, Some(length)) => Some(Some(Framing::Length(length))),
        (None, None) => Some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `input`, fed in pieces of `piece` bytes, with each head's body framed as
    /// `framing` says.
    fn events(input: &[u8], piece: usize, framing: Framing) -> Vec<Event> {
        let mut scanner = Scanner::new(1024);
        let mut seen = Vec::new();
        for mut part in input.chunks(piece) {
            while !part.is_empty() {
                let (used, event) = scanner.feed(part);
                part = &part[used..];
                if let Some(event) = event {
                    let ended = matches!(event, Event::HeadEnded(_));
                    seen.push(event);
                    if ended && scanner.start_body(framing) {
                        seen.push(Event::BodyEnded);
                    }
                }
            }
        }
        seen
    }

    fn head(text: &str) -> Event {
        Event::HeadEnded(text.as_bytes().to_vec())
    }

    #[test]
    fn a_head_ends_at_its_blank_line_however_the_bytes_are_split() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for piece in 1..=input.len() {
            assert_eq!(
                events(input, piece, Framing::Empty),
                vec![
                    Event::HeadStarted,
                    head("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                    Event::BodyEnded
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn bare_line_feeds_end_lines_as_they_do_for_hyper() {
        for text in [
            "GET / HTTP/1.1\nHost: a\n\n",
            "GET / HTTP/1.1\r\nHost: a\n\r\n",
            "GET / HTTP/1.1\nHost: a\r\n\n",
        ] {
            assert_eq!(
                events(text.as_bytes(), 1, Framing::Empty),
                vec![Event::HeadStarted, head(text), Event::BodyEnded]
            );
        }
    }

    #[test]
    fn blank_lines_between_messages_start_no_head() {
        assert_eq!(events(b"\r\n\r\n\n", 2, Framing::Empty), vec![]);
        assert_eq!(
            events(b"\r\nGET / HTTP/1.1\r\n\r\n", 3, Framing::Empty),
            vec![
                Event::HeadStarted,
                head("GET / HTTP/1.1\r\n\r\n"),
                Event::BodyEnded
            ]
        );
    }

    #[test]
    fn a_body_of_known_length_is_skipped_and_the_next_head_follows() {
        let input = b"POST / HTTP/1.1\r\n\r\nabc\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        for piece in [1, 4, input.len()] {
            assert_eq!(
                events(input, piece, Framing::Length(7)),
                vec![
                    Event::HeadStarted,
                    head("POST / HTTP/1.1\r\n\r\n"),
                    Event::BodyEnded,
                    Event::HeadStarted,
                    head("GET / HTTP/1.1\r\n\r\n"),
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let body = "5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
        let input = format!("POST / HTTP/1.1\r\n\r\n{body}GET / HTTP/1.1\r\n\r\n");
        for piece in [1, 3, 7, input.len()] {
            assert_eq!(
                events(input.as_bytes(), piece, Framing::Chunked),
                vec![
                    Event::HeadStarted,
                    head("POST / HTTP/1.1\r\n\r\n"),
                    Event::BodyEnded,
                    Event::HeadStarted,
                    head("GET / HTTP/1.1\r\n\r\n"),
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_chunk_size_that_is_not_hex_or_overflows_is_malformed() {
        for body in ["zz\r\n", "fffffffffffffffff\r\n", "\r\n"] {
            let input = format!("POST / HTTP/1.1\r\n\r\n{body}");
            let seen = events(input.as_bytes(), 1, Framing::Chunked);
            assert_eq!(seen.last(), Some(&Event::Malformed), "{body:?}");
        }
    }

    #[test]
    fn a_head_is_too_large_at_the_limit_even_when_it_is_one_line() {
        let mut scanner = Scanner::new(16);
        let (used, event) = scanner.feed(b"GET /aaaaaaaaaaaaaaaaaaaa");
        assert_eq!((used, event), (1, Some(Event::HeadStarted)));
        assert_eq!(
            scanner.feed(b"ET /aaaaaaaaaaaaaaaaaaaa"),
            (15, Some(Event::HeadTooLarge))
        );
        let mut fits = Scanner::new(20);
        let input = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(fits.feed(input).1, Some(Event::HeadStarted));
        assert_eq!(
            fits.feed(&input[1..]).1,
            Some(head("GET / HTTP/1.1\r\n\r\n"))
        );
    }

    #[test]
    fn request_framing_follows_hyper() {
        let framing = |text: &str| parse_request(text.as_bytes()).map(|head| head.framing);
        assert_eq!(framing("GET / HTTP/1.1\r\n\r\n"), Some(Framing::Empty));
        assert_eq!(
            framing("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            Some(Framing::Length(12))
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\ncontent-length: 3, 3\r\n\r\n"),
            Some(Framing::Length(3))
        );
        assert_eq!(
            framing(
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            ),
            Some(Framing::Chunked)
        );
        for refused in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\n",
        ] {
            assert_eq!(framing(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn response_framing_depends_on_the_status_and_the_request() {
        let get = parse_request(b"GET / HTTP/1.1\r\n\r\n").expect("request");
        let head = parse_request(b"HEAD / HTTP/1.1\r\n\r\n").expect("request");
        let with_length = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        assert_eq!(
            parse_response(with_length, &get),
            Some(ResponseHead::Final(Framing::Length(5)))
        );
        assert_eq!(
            parse_response(with_length, &head),
            Some(ResponseHead::Final(Framing::Empty))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", &get),
            Some(ResponseHead::Interim)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 204 No Content\r\n\r\n", &get),
            Some(ResponseHead::Final(Framing::Empty))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\n", &get),
            Some(ResponseHead::Final(Framing::UntilClose))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", &get),
            None
        );
    }
}
