//! The Elixir guide's `kv_server` line protocol (seed 001), sans-IO: one command per line,
//! words separated by whitespace.
//!
//! | line | reply |
//! |---|---|
//! | `CREATE bucket` | `OK` |
//! | `PUT bucket key value` | `OK` (the value is stored as a binary) |
//! | `GET bucket key` | the value, then `OK` (an empty line then `OK` when the key is absent) |
//! | `DELETE bucket key` | `OK` |
//!
//! As in the guide, a bucket must be created before `PUT`, `GET` or `DELETE` use it, or the
//! reply is `NOT FOUND`; anything else is `UNKNOWN COMMAND`. Lines end with `\r\n` (a bare
//! `\n` is accepted). Where the guide would drop the connection on an error, this server
//! answers `ERROR <why>` and keeps it: a typo must not cost a client its session.

/// The longest line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// A command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `CREATE bucket`.
    Create(String),
    /// `PUT bucket key value`.
    Put(String, String, String),
    /// `GET bucket key`.
    Get(String, String),
    /// `DELETE bucket key`.
    Delete(String, String),
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Not one of the four commands (or the wrong number of words).
    Unknown,
    /// Not UTF-8.
    NotText,
}

/// Reads one line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotText)?;
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["CREATE", b] => Ok(Command::Create((*b).to_owned())),
        ["PUT", b, k, v] => Ok(Command::Put(
            (*b).to_owned(),
            (*k).to_owned(),
            (*v).to_owned(),
        )),
        ["GET", b, k] => Ok(Command::Get((*b).to_owned(), (*k).to_owned())),
        ["DELETE", b, k] => Ok(Command::Delete((*b).to_owned(), (*k).to_owned())),
        _ => Err(LineError::Unknown),
    }
}

/// The reply to a command that succeeded.
pub const OK: &str = "OK\r\n";
/// The reply for a bucket that does not exist.
pub const NOT_FOUND: &str = "NOT FOUND\r\n";
/// The reply for a line that is not a command.
pub const UNKNOWN: &str = "UNKNOWN COMMAND\r\n";

/// `ERROR why` (one line).
pub fn error(why: &str) -> String {
    let one_line: String = why
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    format!("ERROR {one_line}\r\n")
}

/// A GET's reply.
pub fn value(text: &str) -> String {
    format!("{text}\r\n{OK}")
}

/// Splits complete lines off the front of `buf`. Returns each line (without `\r\n`), or an
/// error marker for a line longer than [`MAX_LINE`] (whose bytes are dropped up to its end).
/// `discarding` carries, between calls, that we are inside an over-long line.
pub fn split_lines(buf: &mut Vec<u8>, discarding: &mut bool) -> Vec<Result<Vec<u8>, ()>> {
    let mut out = Vec::new();
    loop {
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let mut line: Vec<u8> = buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if *discarding {
                    *discarding = false;
                    out.push(Err(()));
                } else if line.len() > MAX_LINE {
                    out.push(Err(()));
                } else {
                    out.push(Ok(line));
                }
            }
            None => {
                if buf.len() > MAX_LINE {
                    buf.clear();
                    *discarding = true;
                }
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_commands_parse() {
        assert_eq!(
            parse(b"CREATE shopping"),
            Ok(Command::Create("shopping".into()))
        );
        assert_eq!(
            parse(b"PUT shopping milk 1"),
            Ok(Command::Put("shopping".into(), "milk".into(), "1".into()))
        );
        assert_eq!(
            parse(b"GET  shopping\tmilk "),
            Ok(Command::Get("shopping".into(), "milk".into()))
        );
        assert_eq!(
            parse(b"DELETE shopping eggs"),
            Ok(Command::Delete("shopping".into(), "eggs".into()))
        );
        assert_eq!(parse(b"UNKNOWN shopping eggs"), Err(LineError::Unknown));
        assert_eq!(parse(b"GET shopping"), Err(LineError::Unknown));
        assert_eq!(parse(b""), Err(LineError::Unknown));
        assert_eq!(parse(&[0xff, 0xfe]), Err(LineError::NotText));
        assert_eq!(value("1"), "1\r\nOK\r\n");
        assert_eq!(error("a\r\nb"), "ERROR a  b\r\n");
    }

    #[test]
    fn lines_split_and_long_ones_are_dropped_whole() {
        let mut d = false;
        let mut buf = b"GET a b\r\nPUT a".to_vec();
        assert_eq!(split_lines(&mut buf, &mut d), vec![Ok(b"GET a b".to_vec())]);
        assert_eq!(buf, b"PUT a");
        buf.extend_from_slice(b" b c\n");
        assert_eq!(
            split_lines(&mut buf, &mut d),
            vec![Ok(b"PUT a b c".to_vec())]
        );
        // An over-long line, arriving in pieces: one error, then the next line is fine.
        let mut buf = vec![b'x'; MAX_LINE + 10];
        assert!(split_lines(&mut buf, &mut d).is_empty());
        assert!(d && buf.is_empty());
        buf.extend_from_slice(b"xxxx\r\nCREATE b\r\n");
        assert_eq!(
            split_lines(&mut buf, &mut d),
            vec![Err(()), Ok(b"CREATE b".to_vec())]
        );
        assert!(!d);
    }
}
