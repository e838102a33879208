//! Reading a term written in Erlang syntax: the inverse of the printer in `fmt.rs`.
//!
//! Operators type terms on a command line (the values of `cluster kv put`, the requests of
//! `cluster call`) and paste them from an Erlang shell or from our own output, so [`parse`]
//! reads what a person writes, what `io:format("~p")`/`~w` prints, and what [`Term`]'s
//! `Display` prints: a term printed by `Display` reads back as an equal term, except pids,
//! ports, references and funs other than `fun M:F/A` (their printed forms do not carry enough
//! to rebuild them, and a command line has no business forging them), and a bitstring whose
//! unused low bits were not zero (they are not printed). Errors give the 1-based line and
//! column and say what was expected and what was found, for people rather than programs:
//! ``1:5: expected `,` or `}` in a tuple, found `]` ``.
//!
//! Accepted, as Erlang's `erl_scan` and `erl_parse:parse_term` accept it:
//! - atoms, bare (`ok`, `foo_Bar@host`) or quoted (`'it\'s'`), at most 255 characters;
//!   reserved words (`end`, `fun`, …) only quoted, and variables not at all;
//! - integers: `42`, `-7`, `+7`, `1_000_000`, `16#FF`, `2#1010` (bases 2 to 36), `$a`, `$\n`,
//!   of any size (beyond `i64` they become [`Term::Big`]);
//! - floats with digits on both sides of the dot: `1.5`, `-2.0e-3`;
//! - strings `"abc"`, which are lists of character codes (`""` is `[]`); adjacent strings
//!   are joined, as in Erlang;
//! - binaries `<<>>`, `<<"text">>`, `<<1,2,255>>`, `<<"a",0,$b>>`, `<<$é/utf8>>`, and
//!   bitstrings `<<1:3>>` (integer segments of 1 to 64 bits, big-endian, unsigned);
//! - tuples, proper and improper lists (`[a|b]`; a list tail is flattened, so `[1|[2]]` is
//!   `[1,2]`), maps `#{k => v}` (a repeated key keeps its last value, as in Erlang);
//! - `fun Module:Function/Arity`;
//! - whitespace, `%` comments to the end of a line, and one `.` after the term.
//!
//! Where this differs from Erlang:
//! - a string inside a binary is UTF-8, as if written `/utf8` (Erlang keeps only the low
//!   byte of each character), because that is how the printer writes a UTF-8 binary; write
//!   integers for raw bytes;
//! - a binary segment must fit its size (`<<256>>` and `<<-1>>` are errors, where Erlang
//!   silently truncates), and only `integer`, `unsigned`, `big` and `utf8` types are read;
//! - an integer followed directly by `.` (`1.`) is refused as an unfinished float, where
//!   Erlang reads the integer and the end dot: on a command line `1.` is ambiguous. `1 .` is
//!   the integer;
//! - no expressions: no arithmetic, records, parentheses or variables.
//!
//! Parsing never recurses: nested containers are built with an explicit stack of open
//! frames, so a megabyte of `[` costs heap, not stack, as everywhere else in `term`.
//! Integer literals in a base that is not a power of two are limited to 100,000 digits
//! (converting them takes time quadratic in their length); hexadecimal ones, which the printer
//! writes for big integers, have no limit.

use std::collections::HashSet;

use bytes::Bytes;
use thiserror::Error;

use super::fmt::RESERVED;
use super::{improper, list, trim, tuple, Atom, BigInt, Export, Term, Terms};

/// The longest atom, in characters.
const MAX_ATOM_CHARS: usize = 255;

/// The most digits read for an integer in a base that is not a power of two.
const MAX_SLOW_DIGITS: usize = 100_000;

/// Why text is not a term: where (1-based line and column, counted in characters) and what.
/// Displays as `line:column: message`, e.g. ``1:5: expected `,` or `}` in a tuple, found
/// `]` ``.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
    /// What was wrong, for a person to read.
    pub message: String,
}

/// Parses one term written in Erlang syntax, as a person writes it, `io:format("~p")`/`~w`
/// prints it, or [`Term`]'s `Display` prints it. Whitespace and `%` comments around it and one
/// `.` after it are allowed; anything else after it is an error.
///
/// Accepted: atoms (`ok`, `'quoted'`), integers of any size (`-7`, `16#FF`, `1_000`, `$a`),
/// floats (`1.5`, `-2.0e-3`), strings (`"abc"`, a list of character codes), binaries
/// (`<<"text">>`, `<<1,2,255>>`, `<<$é/utf8>>`, `<<1:3>>`), tuples, proper and improper lists,
/// maps (`#{k => v}`) and `fun M:F/A`. Not accepted: pids, ports, references, other funs,
/// records, variables and expressions. Two departures from Erlang: a string inside a binary is
/// UTF-8 (as if `/utf8`), and an integer directly followed by `.` (`1.`) is refused as an
/// unfinished float.
pub fn parse(text: &str) -> Result<Term, ParseError> {
    let mut p = Parser {
        lx: Lexer {
            src: text,
            at: 0,
            line: 1,
            col: 1,
        },
        ahead: None,
    };
    let term = p.term()?;
    let mut t = p.next()?;
    if let Tok::Dot = t.tok {
        t = p.next()?;
    }
    match t.tok {
        Tok::Eof => Ok(term),
        _ => Err(p.expected("the end of the input after the term", &t)),
    }
}

#[derive(Clone, Copy, Debug)]
struct Pos {
    line: usize,
    col: usize,
}

fn err(pos: Pos, message: impl Into<String>) -> ParseError {
    ParseError {
        line: pos.line,
        column: pos.col,
        message: message.into(),
    }
}

enum Tok {
    /// A bare or quoted atom.
    Atom(String),
    /// A reserved word, written bare.
    Reserved(&'static str),
    /// A variable name.
    Var,
    /// A non-negative integer: little-endian 32-bit limbs.
    Int(Vec<u32>),
    /// A non-negative float.
    Float(f64),
    /// A string's characters.
    Str(String),
    /// Punctuation.
    Punct(&'static str),
    /// The `.` that ends a term.
    Dot,
    /// Any other character.
    Other,
    /// The end of the input.
    Eof,
}

struct Token {
    tok: Tok,
    pos: Pos,
    /// Byte range in the input.
    start: usize,
    end: usize,
}

fn starts_atom(c: char) -> bool {
    c.is_ascii_lowercase() || (('\u{DF}'..='\u{FF}').contains(&c) && c != '\u{F7}')
}

fn starts_var(c: char) -> bool {
    c.is_ascii_uppercase() || c == '_' || (('\u{C0}'..='\u{DE}').contains(&c) && c != '\u{D7}')
}

/// A character that may follow the first in an atom or variable name (Latin-1 letters
/// included, as in `erl_scan`).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '_'
        || c == '@'
        || (('\u{C0}'..='\u{FF}').contains(&c) && c != '\u{D7}' && c != '\u{F7}')
}

struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    at: usize,
    line: usize,
    col: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.at..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.src[self.at..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.bump();
        }
        hit
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c == '%' {
                while !matches!(self.bump(), Some('\n') | None) {}
            } else if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        self.skip_blank();
        let pos = self.pos();
        let start = self.at;
        let tok = match self.peek() {
            None => Tok::Eof,
            Some('0'..='9') => self.number(pos)?,
            Some('$') => {
                self.bump();
                let c = match self.bump() {
                    None => return Err(err(pos, "expected a character after `$`")),
                    Some('\\') => self.escape(|| err(pos, "expected a character after `$`"))?,
                    Some(c) => c,
                };
                Tok::Int(vec![c as u32])
            }
            Some('"') => Tok::Str(self.quoted('"', pos, "string")?),
            Some('\'') => {
                let s = self.quoted('\'', pos, "quoted atom")?;
                atom_length(&s, pos)?;
                Tok::Atom(s)
            }
            Some(c) if starts_atom(c) => {
                while self.peek().is_some_and(name_char) {
                    self.bump();
                }
                let s = &self.src[start..self.at];
                match RESERVED.iter().find(|r| **r == s) {
                    Some(r) => Tok::Reserved(r),
                    None => {
                        atom_length(s, pos)?;
                        Tok::Atom(s.to_owned())
                    }
                }
            }
            Some(c) if starts_var(c) => {
                while self.peek().is_some_and(name_char) {
                    self.bump();
                }
                Tok::Var
            }
            Some(c) => {
                self.bump();
                self.punct(c)
            }
        };
        Ok(Token {
            tok,
            pos,
            start,
            end: self.at,
        })
    }

    fn punct(&mut self, c: char) -> Tok {
        let p = match c {
            '{' => "{",
            '}' => "}",
            '[' => "[",
            ']' => "]",
            '(' => "(",
            ')' => ")",
            '|' => "|",
            ',' => ",",
            '#' => "#",
            '/' => "/",
            '-' => "-",
            '+' => "+",
            '<' if self.eat('<') => "<<",
            '<' => "<",
            '>' if self.eat('>') => ">>",
            '>' => ">",
            '=' if self.eat('>') => "=>",
            '=' => "=",
            ':' if self.eat('=') => ":=",
            ':' => ":",
            // As in Erlang, a `.` ends the term only when a blank, a comment or the end follows.
            '.' => match self.peek() {
                None => return Tok::Dot,
                Some(c) if c.is_whitespace() || c == '%' => return Tok::Dot,
                _ => ".",
            },
            _ => return Tok::Other,
        };
        Tok::Punct(p)
    }

    /// A quoted atom or string; the opening quote is next.
    fn quoted(&mut self, quote: char, open: Pos, what: &str) -> Result<String, ParseError> {
        self.bump();
        let unterminated = || err(open, format!("unterminated {what}, expected `{quote}`"));
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(unterminated()),
                Some(c) if c == quote => return Ok(s),
                Some('\\') => s.push(self.escape(unterminated)?),
                Some(c) => s.push(c),
            }
        }
    }

    /// The character an escape sequence stands for; its `\` has been read. `eof` is the
    /// error for an input that ends inside it.
    fn escape(&mut self, eof: impl Fn() -> ParseError) -> Result<char, ParseError> {
        let start = self.at - 1;
        let pos = Pos {
            line: self.line,
            col: self.col - 1,
        };
        let c = self.bump().ok_or_else(&eof)?;
        let code = match c {
            'b' => 8,
            'd' => 127,
            'e' => 27,
            'f' => 12,
            'n' => 10,
            'r' => 13,
            's' => 32,
            't' => 9,
            'v' => 11,
            '0'..='7' => {
                let mut v = c as u32 - '0' as u32;
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            self.bump();
                            v = v * 8 + (d as u32 - '0' as u32);
                        }
                        _ => break,
                    }
                }
                v
            }
            'x' if self.eat('{') => {
                let mut v: u32 = 0;
                let mut digits = 0;
                while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
                    self.bump();
                    v = v.saturating_mul(16).saturating_add(d);
                    digits += 1;
                }
                if self.peek().is_none() {
                    return Err(eof());
                }
                if digits == 0 || !self.eat('}') {
                    return Err(err(pos, "expected hex digits and `}` in `\\x{…}`"));
                }
                v
            }
            'x' => {
                let mut v = 0;
                for _ in 0..2 {
                    match self.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            self.bump();
                            v = v * 16 + d;
                        }
                        None if self.peek().is_none() => return Err(eof()),
                        None => return Err(err(pos, "expected two hex digits or `{` after `\\x`")),
                    }
                }
                v
            }
            '^' => self.bump().ok_or_else(&eof)? as u32 & 31,
            c => c as u32,
        };
        char::from_u32(code).ok_or_else(|| {
            err(
                pos,
                format!(
                    "`{}` is not a Unicode character",
                    snippet(&self.src[start..self.at])
                ),
            )
        })
    }

    /// A run of digits in `base`, with single `_`s between digits; the digits only.
    fn digits(&mut self, base: u32) -> String {
        let mut out = String::new();
        loop {
            match self.peek() {
                Some(c) if c.is_digit(base) => out.push(c),
                Some('_')
                    if !out.is_empty() && self.peek_second().is_some_and(|c| c.is_digit(base)) => {}
                _ => return out,
            }
            self.bump();
        }
    }

    /// Refuses a letter, digit or `_` right after a number. `int` is the text of a plain
    /// decimal integer, for hints.
    fn end_of_number(&self, base: u32, int: Option<&str>) -> Result<(), ParseError> {
        let message = match self.peek() {
            Some('_') => "`_` in a number must be between two digits".to_owned(),
            Some(c) if c.is_alphanumeric() => match (c, int) {
                ('x' | 'X', Some("0")) => {
                    "`0x` is not Erlang syntax: write hexadecimal as `16#FF`".to_owned()
                }
                ('e' | 'E', Some(_)) => {
                    "a float needs a `.` and digits before its exponent, as in `1.0e10`".to_owned()
                }
                _ if base != 10 => format!("`{c}` is not a base-{base} digit"),
                _ => format!("unexpected `{c}` right after a number"),
            },
            _ => return Ok(()),
        };
        Err(err(self.pos(), message))
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        let int = self.digits(10);
        if self.peek() == Some('#') {
            let base = int
                .parse::<u32>()
                .ok()
                .filter(|b| (2..=36).contains(b))
                .ok_or_else(|| {
                    err(
                        pos,
                        format!("the base in `{}#` must be between 2 and 36", snippet(&int)),
                    )
                })?;
            self.bump();
            let at = self.pos();
            let digits = self.digits(base);
            if digits.is_empty() {
                return Err(err(
                    at,
                    format!("expected base-{base} digits after `{base}#`"),
                ));
            }
            self.end_of_number(base, None)?;
            return Ok(Tok::Int(magnitude(&digits, base, pos)?));
        }
        if self.peek() == Some('.') && !matches!(self.peek_second(), Some('0'..='9')) {
            let n = if int.len() <= 20 { int.as_str() } else { "1" };
            return Err(err(
                self.pos(),
                format!(
                    "expected a digit after `.` in a float: write `{n}.0` for a float, or `{n}` \
                     for an integer"
                ),
            ));
        }
        if self.eat('.') {
            let mut text = format!("{int}.{}", self.digits(10));
            if matches!(self.peek(), Some('e' | 'E')) {
                let at = self.pos();
                self.bump();
                text.push('e');
                if let Some(sign @ ('+' | '-')) = self.peek() {
                    self.bump();
                    text.push(sign);
                }
                let exp = self.digits(10);
                if exp.is_empty() {
                    return Err(err(at, "expected digits in the exponent of a float"));
                }
                text.push_str(&exp);
            }
            self.end_of_number(10, None)?;
            return match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Tok::Float(f)),
                _ => Err(err(
                    pos,
                    format!("float `{}` is out of range", snippet(&text)),
                )),
            };
        }
        self.end_of_number(10, Some(int.as_str()))?;
        Ok(Tok::Int(magnitude(&int, 10, pos)?))
    }
}

fn atom_length(s: &str, pos: Pos) -> Result<(), ParseError> {
    let n = s.chars().count();
    if n > MAX_ATOM_CHARS {
        return Err(err(
            pos,
            format!("atom is too long: {n} characters, at most {MAX_ATOM_CHARS}"),
        ));
    }
    Ok(())
}

/// `text` cut to its first line and a few characters, to quote in a message.
fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take_while(|c| *c != '\n').take(24).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// `limbs = limbs * mul + add`.
fn mul_add(limbs: &mut Vec<u32>, mul: u32, add: u32) {
    let mut carry = u64::from(add);
    for limb in limbs.iter_mut() {
        let v = u64::from(*limb) * u64::from(mul) + carry;
        *limb = v as u32;
        carry = v >> 32;
    }
    if carry != 0 {
        limbs.push(carry as u32);
    }
}

/// The value of valid `digits` in `base`, as little-endian 32-bit limbs.
fn magnitude(digits: &str, base: u32, pos: Pos) -> Result<Vec<u32>, ParseError> {
    let digit = |b: u8| char::from(b).to_digit(base).unwrap_or(0);
    if base.is_power_of_two() {
        // Linear: each digit is a fixed number of bits, laid in from the low end.
        let width = base.trailing_zeros();
        let mut limbs = Vec::with_capacity(digits.len() * width as usize / 32 + 1);
        let (mut acc, mut bits) = (0u64, 0);
        for b in digits.bytes().rev() {
            acc |= u64::from(digit(b)) << bits;
            bits += width;
            if bits >= 32 {
                limbs.push(acc as u32);
                acc >>= 32;
                bits -= 32;
            }
        }
        if bits > 0 {
            limbs.push(acc as u32);
        }
        return Ok(limbs);
    }
    if digits.len() > MAX_SLOW_DIGITS {
        return Err(err(
            pos,
            format!(
                "integer too long: {} digits, at most {MAX_SLOW_DIGITS} in base {base} \
                 (hexadecimal `16#…` has no limit)",
                digits.len()
            ),
        ));
    }
    // As many digits at a time as fit a limb.
    let mut limbs = Vec::new();
    let (mut chunk, mut scale) = (0u64, 1u64);
    for b in digits.bytes() {
        if scale * u64::from(base) > u64::from(u32::MAX) {
            mul_add(&mut limbs, scale as u32, chunk as u32);
            (chunk, scale) = (0, 1);
        }
        chunk = chunk * u64::from(base) + u64::from(digit(b));
        scale *= u64::from(base);
    }
    mul_add(&mut limbs, scale as u32, chunk as u32);
    Ok(limbs)
}

/// The magnitude as a `u64`, if it fits.
fn magnitude_u64(limbs: &[u32]) -> Option<u64> {
    let used = limbs.iter().rposition(|l| *l != 0).map_or(0, |i| i + 1);
    match limbs[..used] {
        [] => Some(0),
        [lo] => Some(u64::from(lo)),
        [lo, hi] => Some(u64::from(hi) << 32 | u64::from(lo)),
        _ => None,
    }
}

/// The integer term for a sign and magnitude: [`Term::Int`] when it fits.
fn int_term(negative: bool, limbs: &[u32]) -> Term {
    if let Some(v) = magnitude_u64(limbs) {
        let v = if negative {
            -i128::from(v)
        } else {
            i128::from(v)
        };
        if let Ok(i) = i64::try_from(v) {
            return Term::Int(i);
        }
    }
    let magnitude = trim(limbs.iter().flat_map(|l| l.to_le_bytes()).collect());
    Term::Big(Box::new(BigInt {
        negative,
        magnitude,
    }))
}

/// A map from its keys and values, a repeated key keeping its last value (as `#{a => 1,
/// a => 2}` is `#{a => 2}` in Erlang).
fn map_term(kv: Vec<Term>) -> Term {
    let pairs = kv.len() / 2;
    let keep = {
        let mut seen = HashSet::with_capacity(pairs);
        let mut keep = vec![false; pairs];
        for i in (0..pairs).rev() {
            keep[i] = seen.insert(&kv[2 * i]);
        }
        keep
    };
    if keep.iter().all(|k| *k) {
        return Term::Map(Terms::from(kv));
    }
    let mut out = Vec::with_capacity(kv.len());
    let mut items = kv.into_iter();
    for k in keep {
        let (key, value) = (items.next(), items.next());
        if k {
            out.extend(key);
            out.extend(value);
        }
    }
    Term::Map(Terms::from(out))
}

/// Bits laid down big-endian, for a binary.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    fn push_bytes(&mut self, b: &[u8]) {
        if self.bits.is_multiple_of(8) {
            self.bytes.extend_from_slice(b);
            self.bits += 8 * b.len();
        } else {
            for &byte in b {
                self.push_bits(u64::from(byte), 8);
            }
        }
    }

    /// The low `n` bits of `v`, most significant first.
    fn push_bits(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            let used = self.bits % 8;
            if used == 0 {
                self.bytes.push(0);
            }
            if (v >> i) & 1 == 1 {
                if let Some(last) = self.bytes.last_mut() {
                    *last |= 0x80 >> used;
                }
            }
            self.bits += 1;
        }
    }

    fn finish(self) -> Term {
        match (self.bits % 8) as u8 {
            0 => Term::Binary(Bytes::from(self.bytes)),
            tail => Term::Bits(Bytes::from(self.bytes), tail),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Tuple,
    List,
    /// A list after its `|`: the tail is being read.
    Tail,
    /// A map: a key is being read.
    MapKey,
    /// A map: a value is being read.
    MapValue,
}

/// A container opened and not yet closed.
struct Frame {
    kind: Kind,
    items: Vec<Term>,
    open: Pos,
}

fn unterminated(f: &Frame) -> ParseError {
    let (what, close) = match f.kind {
        Kind::Tuple => ("tuple", "}"),
        Kind::List | Kind::Tail => ("list", "]"),
        Kind::MapKey | Kind::MapValue => ("map", "}"),
    };
    err(f.open, format!("unterminated {what}, expected `{close}`"))
}

/// A binary segment's value.
enum Segment {
    Int(bool, Vec<u32>),
    Str(String),
}

struct Parser<'a> {
    lx: Lexer<'a>,
    ahead: Option<Token>,
}

impl Parser<'_> {
    fn next(&mut self) -> Result<Token, ParseError> {
        match self.ahead.take() {
            Some(t) => Ok(t),
            None => self.lx.next(),
        }
    }

    fn peek(&mut self) -> Result<&Token, ParseError> {
        let t = match self.ahead.take() {
            Some(t) => t,
            None => self.lx.next()?,
        };
        Ok(self.ahead.insert(t))
    }

    /// Consumes the punctuation `p` if it is next.
    fn eat(&mut self, p: &str) -> Result<bool, ParseError> {
        let hit = matches!(self.peek()?.tok, Tok::Punct(q) if q == p);
        if hit {
            self.ahead = None;
        }
        Ok(hit)
    }

    fn text(&self, t: &Token) -> &str {
        &self.lx.src[t.start..t.end]
    }

    fn found(&self, t: &Token) -> String {
        match t.tok {
            Tok::Eof => "end of input".to_owned(),
            _ => format!("`{}`", snippet(self.text(t))),
        }
    }

    fn expected(&self, what: &str, t: &Token) -> ParseError {
        err(t.pos, format!("expected {what}, found {}", self.found(t)))
    }

    /// One term, containers built on an explicit stack.
    fn term(&mut self) -> Result<Term, ParseError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // The start of a term.
            let t = self.next()?;
            let pos = t.pos;
            let open = move |kind| Frame {
                kind,
                items: Vec::new(),
                open: pos,
            };
            let mut value = match t.tok {
                Tok::Punct("{") if self.eat("}")? => tuple(Vec::new()),
                Tok::Punct("{") => {
                    stack.push(open(Kind::Tuple));
                    continue;
                }
                Tok::Punct("[") if self.eat("]")? => Term::nil(),
                Tok::Punct("[") => {
                    stack.push(open(Kind::List));
                    continue;
                }
                Tok::Punct("#") => {
                    self.map_open(&t)?;
                    if self.eat("}")? {
                        Term::Map(Terms::default())
                    } else {
                        stack.push(open(Kind::MapKey));
                        continue;
                    }
                }
                Tok::Eof => {
                    return Err(match stack.last() {
                        Some(f) => unterminated(f),
                        None => self.expected("a term", &t),
                    })
                }
                _ => self.leaf(t)?,
            };
            // The term is complete: give it to the innermost open container, closing as many
            // as end here.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(value);
                };
                let t = self.next()?;
                let p = match t.tok {
                    Tok::Punct(p) => p,
                    Tok::Eof => return Err(unterminated(top)),
                    _ => "",
                };
                match (top.kind, p) {
                    (Kind::Tuple | Kind::List, ",") => {
                        top.items.push(value);
                        break;
                    }
                    (Kind::List, "|") => {
                        top.items.push(value);
                        top.kind = Kind::Tail;
                        break;
                    }
                    (Kind::MapKey, "=>") => {
                        top.items.push(value);
                        top.kind = Kind::MapValue;
                        break;
                    }
                    (Kind::MapValue, ",") => {
                        top.items.push(value);
                        top.kind = Kind::MapKey;
                        break;
                    }
                    (Kind::Tuple, "}") | (Kind::List, "]") | (Kind::MapValue, "}") => {
                        top.items.push(value);
                        let kind = top.kind;
                        let items = stack.pop().map(|f| f.items).unwrap_or_default();
                        value = match kind {
                            Kind::Tuple => tuple(items),
                            Kind::List => list(items),
                            _ => map_term(items),
                        };
                    }
                    (Kind::Tail, "]") => {
                        let items = stack.pop().map(|f| f.items).unwrap_or_default();
                        value = improper(items, value);
                    }
                    (Kind::Tuple, _) => return Err(self.expected("`,` or `}` in a tuple", &t)),
                    (Kind::List, _) => return Err(self.expected("`,`, `|` or `]` in a list", &t)),
                    (Kind::Tail, _) => {
                        return Err(self.expected("`]` after the tail of a list", &t))
                    }
                    (Kind::MapKey, ":=") => {
                        return Err(err(
                            t.pos,
                            "expected `=>` after a map key, found `:=` (which only updates \
                             a map in Erlang code)",
                        ))
                    }
                    (Kind::MapKey, _) => return Err(self.expected("`=>` after a map key", &t)),
                    (Kind::MapValue, _) => return Err(self.expected("`,` or `}` in a map", &t)),
                }
            }
        }
    }

    /// After `#`: the `{` of a map, or an error naming what `#` starts in printed terms.
    fn map_open(&mut self, hash: &Token) -> Result<(), ParseError> {
        let t = self.next()?;
        let what = match t.tok {
            Tok::Punct("{") => return Ok(()),
            Tok::Var => match self.text(&t) {
                "Pid" => "pids cannot be written as text",
                "Port" => "ports cannot be written as text",
                "Ref" => "references cannot be written as text",
                "Fun" => "funs cannot be written as text, except `fun Module:Function/Arity`",
                _ => "",
            },
            Tok::Atom(_) => "records cannot be written as text: write the tuple instead",
            _ => "",
        };
        if what.is_empty() {
            return Err(self.expected("`{` after `#` (a map is `#{Key => Value}`)", &t));
        }
        Err(err(hash.pos, what))
    }

    /// A term that is not a tuple, list or map.
    fn leaf(&mut self, t: Token) -> Result<Term, ParseError> {
        match t.tok {
            Tok::Atom(a) => Ok(Term::Atom(Atom::from(a))),
            Tok::Int(m) => Ok(int_term(false, &m)),
            Tok::Float(f) => Ok(Term::Float(f)),
            Tok::Str(s) => {
                let s = self.more_strings(s)?;
                Ok(list(
                    s.chars()
                        .map(|c| Term::Int(i64::from(u32::from(c))))
                        .collect(),
                ))
            }
            Tok::Punct(sign @ ("-" | "+")) => {
                let n = self.next()?;
                let negative = sign == "-";
                match n.tok {
                    Tok::Int(m) => Ok(int_term(negative, &m)),
                    Tok::Float(f) => Ok(Term::Float(if negative { -f } else { f })),
                    _ => Err(self.expected(&format!("a number after `{sign}`"), &n)),
                }
            }
            Tok::Punct("<<") => self.binary(t.pos),
            Tok::Punct("<") if matches!(self.peek()?.tok, Tok::Int(_) | Tok::Float(_)) => {
                Err(err(t.pos, "pids cannot be written as text"))
            }
            Tok::Reserved("fun") => self.export(),
            Tok::Reserved(w) => Err(err(
                t.pos,
                format!("`{w}` is a reserved word: write it quoted, '{w}', for the atom"),
            )),
            Tok::Var => {
                let v = snippet(self.text(&t));
                Err(err(
                    t.pos,
                    format!(
                        "`{v}` is a variable, which a term cannot hold: write '{v}' for an \
                         atom or \"{v}\" for a string"
                    ),
                ))
            }
            _ => Err(self.expected("a term", &t)),
        }
    }

    /// Joins the strings that follow a string, as Erlang does with `"ab" "cd"`.
    fn more_strings(&mut self, mut s: String) -> Result<String, ParseError> {
        while matches!(self.peek()?.tok, Tok::Str(_)) {
            if let Tok::Str(more) = self.next()?.tok {
                s.push_str(&more);
            }
        }
        Ok(s)
    }

    fn atom_after(&mut self, what: &str) -> Result<Atom, ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Atom(a) => Ok(Atom::from(a)),
            _ => Err(self.expected(what, &t)),
        }
    }

    fn punct_after(&mut self, p: &str, what: &str) -> Result<(), ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Punct(q) if q == p => Ok(()),
            _ => Err(self.expected(what, &t)),
        }
    }

    /// `fun Module:Function/Arity`, after the `fun`.
    fn export(&mut self) -> Result<Term, ParseError> {
        let module = self.atom_after(
            "a module after `fun` (only `fun Module:Function/Arity` can be written as text)",
        )?;
        self.punct_after(":", "`:` after the module in `fun Module:Function/Arity`")?;
        let function = self.atom_after("a function name after `:`")?;
        self.punct_after(
            "/",
            "`/` after the function name in `fun Module:Function/Arity`",
        )?;
        let t = self.next()?;
        let arity = match &t.tok {
            Tok::Int(m) => magnitude_u64(m).and_then(|a| u8::try_from(a).ok()),
            _ => None,
        };
        let Some(arity) = arity else {
            return Err(self.expected("an arity from 0 to 255 after `/`", &t));
        };
        Ok(Term::Export(Box::new(Export {
            module,
            function,
            arity,
        })))
    }

    /// A binary, after its `<<`.
    fn binary(&mut self, open: Pos) -> Result<Term, ParseError> {
        let unterminated = || err(open, "unterminated binary, expected `>>`");
        let mut w = BitWriter::default();
        if self.eat(">>")? {
            return Ok(w.finish());
        }
        loop {
            self.segment(&mut w, &unterminated)?;
            let t = self.next()?;
            match t.tok {
                Tok::Punct(",") => {}
                Tok::Punct(">>") => return Ok(w.finish()),
                Tok::Eof => return Err(unterminated()),
                _ => return Err(self.expected("`,` or `>>` in a binary", &t)),
            }
        }
    }

    /// One segment of a binary: a value, then perhaps `:Size` and `/Type`.
    fn segment(
        &mut self,
        w: &mut BitWriter,
        unterminated: &dyn Fn() -> ParseError,
    ) -> Result<(), ParseError> {
        let t = self.next()?;
        let (at, start) = (t.pos, t.start);
        let value = match t.tok {
            Tok::Int(m) => Segment::Int(false, m),
            Tok::Punct(sign @ ("-" | "+")) => {
                let n = self.next()?;
                match n.tok {
                    Tok::Int(m) => Segment::Int(sign == "-", m),
                    Tok::Eof => return Err(unterminated()),
                    _ => return Err(self.expected(&format!("an integer after `{sign}`"), &n)),
                }
            }
            Tok::Str(s) => Segment::Str(self.more_strings(s)?),
            Tok::Float(_) => {
                return Err(err(
                    at,
                    "a binary cannot hold a float here: write integers (bytes) or strings",
                ))
            }
            Tok::Eof => return Err(unterminated()),
            _ => return Err(self.expected("an integer or a string in a binary", &t)),
        };
        let end = self.lx.at;
        let mut size = None;
        if self.eat(":")? {
            let t = self.next()?;
            match &t.tok {
                Tok::Int(m) => size = Some((magnitude_u64(m).unwrap_or(u64::MAX), t.pos)),
                Tok::Eof => return Err(unterminated()),
                _ => return Err(self.expected("a size in bits after `:`", &t)),
            }
        }
        let mut utf8 = false;
        if self.eat("/")? {
            loop {
                let t = self.next()?;
                match &t.tok {
                    Tok::Atom(a) if a == "utf8" => utf8 = true,
                    Tok::Atom(a) if matches!(a.as_str(), "integer" | "unsigned" | "big") => {}
                    Tok::Atom(a) => {
                        return Err(err(
                            t.pos,
                            format!(
                                "unsupported binary segment type `{}`: only `utf8`, \
                                 `integer`, `unsigned` and `big` are accepted",
                                snippet(a)
                            ),
                        ))
                    }
                    Tok::Eof => return Err(unterminated()),
                    _ => return Err(self.expected("a type such as `utf8` after `/`", &t)),
                }
                if !self.eat("-")? {
                    break;
                }
            }
        }
        let text = snippet(&self.lx.src[start..end]);
        match value {
            Segment::Str(_) | Segment::Int(..) if utf8 && size.is_some() => {
                Err(err(at, "a `utf8` segment cannot have a size"))
            }
            Segment::Str(_) if size.is_some() => {
                Err(err(at, "a string in a binary cannot have a size"))
            }
            Segment::Str(s) => {
                w.push_bytes(s.as_bytes());
                Ok(())
            }
            Segment::Int(negative, m) if utf8 => {
                let c = magnitude_u64(&m)
                    .filter(|v| !negative || *v == 0)
                    .and_then(|v| u32::try_from(v).ok())
                    .and_then(char::from_u32)
                    .ok_or_else(|| err(at, format!("`{text}` is not a Unicode character")))?;
                w.push_bytes(c.encode_utf8(&mut [0; 4]).as_bytes());
                Ok(())
            }
            Segment::Int(negative, m) => {
                let bits = match size {
                    None => 8,
                    Some((bits @ 1..=64, _)) => bits as u32,
                    Some((_, pos)) => {
                        return Err(err(pos, "a segment size must be from 1 to 64 bits"))
                    }
                };
                let max = u64::MAX >> (64 - bits);
                match magnitude_u64(&m).filter(|v| *v <= max && (!negative || *v == 0)) {
                    Some(v) => {
                        w.push_bits(v, bits);
                        Ok(())
                    }
                    None if size.is_none() => Err(err(
                        at,
                        format!("`{text}` does not fit in a byte (0 to 255)"),
                    )),
                    None => Err(err(
                        at,
                        format!("`{text}` does not fit in {bits} bits (0 to {max})"),
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::super::{atom, binary, int, list, map, map_of, Export};
    use super::*;

    fn ok(text: &str) -> Term {
        match parse(text) {
            Ok(t) => t,
            Err(e) => panic!("{:?}: {e}", snippet(text)),
        }
    }

    /// Asserts `text` fails at `at` (`line:column`) with a message containing `needle`.
    fn fails(text: &str, at: &str, needle: &str) {
        let e = match parse(text) {
            Ok(t) => panic!("{:?} parsed as {:?}", snippet(text), t),
            Err(e) => e,
        };
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{at}: ")) && shown.contains(needle),
            "{:?}: got {shown:?}, wanted {at}: …{needle}…",
            snippet(text)
        );
    }

    fn chars(s: &str) -> Term {
        list(s.chars().map(|c| int(c as i64)).collect())
    }

    fn big(negative: bool, magnitude: &[u8]) -> Term {
        Term::Big(Box::new(BigInt {
            negative,
            magnitude: magnitude.to_vec(),
        }))
    }

    #[test]
    fn atoms() {
        assert_eq!(ok("ok"), atom("ok"));
        assert_eq!(ok("foo_Bar@host"), atom("foo_Bar@host"));
        assert_eq!(ok("true"), atom("true"));
        assert_eq!(ok("false."), atom("false"));
        assert_eq!(ok("'quoted atoms'"), atom("quoted atoms"));
        assert_eq!(ok("''"), atom(""));
        assert_eq!(ok("'Elixir.Foo'"), atom("Elixir.Foo"));
        assert_eq!(ok("'end'"), atom("end"));
        assert_eq!(ok(r"'it\'s \\ \n\t\s\r'"), atom("it's \\ \n\t \r"));
        assert_eq!(ok(r"'\101\x41\x{263A}\x{1F600}'"), atom("AA☺😀"));
        assert_eq!(
            ok(r"'\b\d\e\f\v\^a\^Z\q\0'"),
            atom("\x08\x7f\x1b\x0c\x0b\x01\x1aq\0")
        );
        assert_eq!(
            ok(r"'\1010'"),
            atom("A0"),
            "octal takes at most three digits"
        );
        assert_eq!(ok("'line\nbreak'"), atom("line\nbreak"));
        assert_eq!(
            ok("ßtraße"),
            atom("ßtraße"),
            "Latin-1 letters, as in erl_scan"
        );
        let longest = "a".repeat(255);
        assert_eq!(ok(&longest), atom(&longest));
        assert_eq!(
            ok(&format!("'{}'", "é".repeat(255))),
            atom(&"é".repeat(255))
        );
        fails(
            &"a".repeat(256),
            "1:1",
            "atom is too long: 256 characters, at most 255",
        );
        fails(&format!("'{}'", "☺".repeat(256)), "1:1", "atom is too long");
        fails(
            "end",
            "1:1",
            "`end` is a reserved word: write it quoted, 'end'",
        );
        fails("Foo", "1:1", "`Foo` is a variable");
        fails("_", "1:1", "is a variable");
        fails(
            r"'\x{D800}'",
            "1:2",
            r"`\x{D800}` is not a Unicode character",
        );
        fails(r"'\x{110000}'", "1:2", "is not a Unicode character");
        fails(r"'\x{}'", "1:2", "expected hex digits");
        fails(r"'\x4'", "1:2", "expected two hex digits");
        fails(r"'ab\", "1:1", "unterminated quoted atom, expected `'`");
    }

    #[test]
    fn integers() {
        assert_eq!(ok("42"), int(42));
        assert_eq!(ok("-7"), int(-7));
        assert_eq!(ok("+7"), int(7));
        assert_eq!(ok("- 7"), int(-7));
        assert_eq!(ok("0"), int(0));
        assert_eq!(ok("-0"), int(0));
        assert_eq!(ok("16#FF"), int(255));
        assert_eq!(ok("16#ff"), int(255));
        assert_eq!(ok("-16#FF"), int(-255));
        assert_eq!(ok("2#1010"), int(10));
        assert_eq!(ok("8#777"), int(511));
        assert_eq!(ok("36#Zz"), int(35 * 36 + 35));
        assert_eq!(ok("1_000_000"), int(1_000_000));
        assert_eq!(ok("16#FF_FF"), int(0xffff));
        assert_eq!(ok("$a"), int(97));
        assert_eq!(ok("$\\n"), int(10));
        assert_eq!(ok("$ "), int(32));
        assert_eq!(ok("$\\s"), int(32));
        assert_eq!(ok("$\\101"), int(65));
        assert_eq!(ok("$\\x{263A}"), int(0x263a));
        assert_eq!(ok("$☺"), int(0x263a));
        assert_eq!(ok("$\\\\"), int(92));
        assert_eq!(ok("$'"), int(39));
        assert_eq!(ok("-$a"), int(-97));
        assert_eq!(ok("9223372036854775807"), int(i64::MAX));
        assert_eq!(ok("-9223372036854775808"), int(i64::MIN));
        assert_eq!(ok("-16#8000000000000000"), int(i64::MIN));
        assert_eq!(ok("9223372036854775808"), Term::from(1u64 << 63));
        assert_eq!(ok("18446744073709551615"), Term::from(u64::MAX));
        assert_eq!(
            ok("-9223372036854775809"),
            big(true, &[1, 0, 0, 0, 0, 0, 0, 0x80])
        );
        assert_eq!(
            ok("18446744073709551616"),
            big(false, &[0, 0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            ok("16#10000000000000000"),
            big(false, &[0, 0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            ok(&format!("2#1{}", "0".repeat(64))),
            ok("18446744073709551616")
        );
        // 10^40 in decimal and in hex.
        assert_eq!(
            ok(&format!("1{}", "0".repeat(40))),
            ok("16#1D6329F1C35CA4BFABB9F5610000000000")
        );
        assert_eq!(
            ok(&format!("-1{}", "0".repeat(40))),
            ok("-16#1D6329F1C35CA4BFABB9F5610000000000")
        );
        // Long hexadecimal literals are linear; long decimal ones are capped.
        let hex = format!("16#{}", "F".repeat(200_000));
        assert!(matches!(ok(&hex), Term::Big(b) if b.magnitude.len() == 100_000));
        fails(
            &"9".repeat(100_001),
            "1:1",
            "integer too long: 100001 digits",
        );
    }

    #[test]
    fn malformed_integers() {
        fails("16#", "1:4", "expected base-16 digits after `16#`");
        fails("16#_F", "1:4", "expected base-16 digits");
        fails("16#FG", "1:5", "`G` is not a base-16 digit");
        fails("2#102", "1:5", "`2` is not a base-2 digit");
        fails("37#1", "1:1", "the base in `37#` must be between 2 and 36");
        fails("1#1", "1:1", "must be between 2 and 36");
        fails("1_", "1:2", "`_` in a number must be between two digits");
        fails("1__0", "1:2", "`_` in a number must be between two digits");
        fails("0x1F", "1:2", "write hexadecimal as `16#FF`");
        fails("1e5", "1:2", "a float needs a `.`");
        fails("12abc", "1:3", "unexpected `a` right after a number");
        fails("$", "1:1", "expected a character after `$`");
        fails("$\\", "1:1", "expected a character after `$`");
        fails(
            "-",
            "1:2",
            "expected a number after `-`, found end of input",
        );
        fails("-a", "1:2", "expected a number after `-`, found `a`");
        fails("- - 7", "1:3", "expected a number after `-`, found `-`");
    }

    #[test]
    fn floats() {
        assert_eq!(ok("1.5"), Term::Float(1.5));
        assert_eq!(ok("-2.0e-3"), Term::Float(-2.0e-3));
        assert_eq!(ok("1.0e10"), Term::Float(1.0e10));
        assert_eq!(ok("1.0E+3"), Term::Float(1000.0));
        assert_eq!(ok("+0.5"), Term::Float(0.5));
        assert_eq!(ok("1_0.5_0e1_0"), Term::Float(1.05e11));
        assert_eq!(ok("1.0e-400"), Term::Float(0.0));
        assert_eq!(ok("5.0e-324"), Term::Float(5e-324));
        assert_eq!(ok("1.7976931348623157e308"), Term::Float(f64::MAX));
        let Term::Float(z) = ok("-0.0") else {
            panic!("not a float")
        };
        assert!(z == 0.0 && z.is_sign_negative());
        fails(
            "1.",
            "1:2",
            "expected a digit after `.` in a float: write `1.0` for a float, or `1` for an integer",
        );
        fails("1.e5", "1:2", "expected a digit after `.`");
        fails("[1.]", "1:3", "expected a digit after `.`");
        fails("1.0e", "1:4", "expected digits in the exponent");
        fails("1.0e+", "1:4", "expected digits in the exponent");
        fails("1.0e400", "1:1", "float `1.0e400` is out of range");
        fails("1.5x", "1:4", "unexpected `x` right after a number");
        // An integer then a separate end dot is fine.
        assert_eq!(ok("1 ."), int(1));
    }

    #[test]
    fn strings() {
        assert_eq!(ok("\"abc\""), chars("abc"));
        assert_eq!(ok("\"\""), Term::nil());
        assert_eq!(
            ok(r#""a\"b\\c\n\t\s\101\x41\x{263A}""#),
            chars("a\"b\\c\n\t AA☺")
        );
        assert_eq!(ok("\"héllo ☺ 😀\""), chars("héllo ☺ 😀"));
        assert_eq!(ok("\"ab\" \"cd\"  % joined\n \"ef\""), chars("abcdef"));
        assert_eq!(ok("\"two\nlines\""), chars("two\nlines"));
        assert_eq!(ok("\"'\""), chars("'"));
        fails("\"abc", "1:1", "unterminated string, expected `\"`");
        fails("{a, \"abc\\\"}", "1:5", "unterminated string");
        fails("\n  \"x\\x{D800}\"", "2:5", "is not a Unicode character");
    }

    #[test]
    fn binaries() {
        assert_eq!(ok("<<>>"), binary(Bytes::new()));
        assert_eq!(ok("<<\"hello\">>"), binary(&b"hello"[..]));
        assert_eq!(ok("<<1,2,255>>"), binary(&[1u8, 2, 255][..]));
        assert_eq!(ok("<< 1 , 2 >>"), binary(&[1u8, 2][..]));
        assert_eq!(ok("<<\"a\", 0, \"b\">>"), binary(&b"a\0b"[..]));
        assert_eq!(ok("<<$a, $b>>"), binary(&b"ab"[..]));
        assert_eq!(ok("<<\"\">>"), binary(Bytes::new()));
        // Strings in binaries are UTF-8, as the printer writes them.
        assert_eq!(ok("<<\"é☺\">>"), binary("é☺".as_bytes().to_vec()));
        assert_eq!(ok("<<\"é☺\"/utf8>>"), binary("é☺".as_bytes().to_vec()));
        assert_eq!(
            ok("<<$é/utf8, 300/utf8>>"),
            binary(vec![0xc3, 0xa9, 0xc4, 0xac])
        );
        assert_eq!(
            ok("<<\"\\x{263A}\\n\">>"),
            binary("☺\n".as_bytes().to_vec())
        );
        assert_eq!(ok("<<\"ab\" \"cd\">>"), binary(&b"abcd"[..]));
        assert_eq!(
            ok("<<1:16, 2/integer, 3/unsigned-big-integer>>"),
            binary(vec![0, 1, 2, 3])
        );
        assert_eq!(ok("<<1:4, 1:4>>"), binary(vec![0x11]));
        assert_eq!(
            ok("<<16#123456789ABCDEF0:64>>"),
            binary(0x1234_5678_9abc_def0u64.to_be_bytes().to_vec())
        );
        // Bitstrings.
        assert_eq!(ok("<<1:3>>"), Term::Bits(Bytes::from_static(&[0x20]), 3));
        assert_eq!(
            ok("<<255,7:3>>"),
            Term::Bits(Bytes::from_static(&[0xff, 0xe0]), 3)
        );
        assert_eq!(
            ok("<<1:1, 255>>"),
            Term::Bits(Bytes::from_static(&[0xff, 0x80]), 1)
        );
        assert_eq!(
            ok("<<1:1, \"a\">>"),
            Term::Bits(Bytes::from_static(&[0xb0, 0x80]), 1)
        );
        fails("<<256>>", "1:3", "`256` does not fit in a byte (0 to 255)");
        fails("<<1, -1>>", "1:6", "`-1` does not fit in a byte");
        fails("<<8:3>>", "1:3", "`8` does not fit in 3 bits (0 to 7)");
        fails("<<1:0>>", "1:5", "a segment size must be from 1 to 64 bits");
        fails("<<1:65>>", "1:5", "from 1 to 64 bits");
        fails(
            "<<\"ab\":8>>",
            "1:3",
            "a string in a binary cannot have a size",
        );
        fails(
            "<<97:8/utf8>>",
            "1:3",
            "a `utf8` segment cannot have a size",
        );
        fails(
            "<<16#D800/utf8>>",
            "1:3",
            "`16#D800` is not a Unicode character",
        );
        fails("<<1.5>>", "1:3", "a binary cannot hold a float");
        fails(
            "<<1/float>>",
            "1:5",
            "unsupported binary segment type `float`",
        );
        fails(
            "<<a>>",
            "1:3",
            "expected an integer or a string in a binary, found `a`",
        );
        fails(
            "<<1 2>>",
            "1:5",
            "expected `,` or `>>` in a binary, found `2`",
        );
        fails("<<<<1>>>>", "1:3", "expected an integer or a string");
        fails("{x, <<1,2", "1:5", "unterminated binary, expected `>>`");
        fails("<<1,", "1:1", "unterminated binary, expected `>>`");
        fails("<<", "1:1", "unterminated binary");
    }

    #[test]
    fn containers() {
        assert_eq!(ok("{}"), tuple(vec![]));
        assert_eq!(ok("{ }"), tuple(vec![]));
        assert_eq!(ok("{a, 1}"), tuple(vec![atom("a"), int(1)]));
        assert_eq!(ok("[]"), Term::nil());
        assert_eq!(ok("[1,2]"), list(vec![int(1), int(2)]));
        let t = ok("[a|b]");
        assert!(matches!(&t, Term::Improper(items) if items.len() == 2));
        assert_eq!(t, improper(vec![atom("a")], atom("b")));
        let t = ok("[1,2|[3]]");
        assert!(matches!(&t, Term::List(items) if items.len() == 3), "{t}");
        assert_eq!(t, list(vec![int(1), int(2), int(3)]));
        let t = ok("[1|[2|x]]");
        assert!(
            matches!(&t, Term::Improper(items) if items.len() == 3),
            "{t}"
        );
        assert_eq!(ok("[1|\"ab\"]"), list(vec![int(1), int(97), int(98)]));
        assert_eq!(ok("[1|[]]"), list(vec![int(1)]));
        assert_eq!(ok("#{}"), Term::Map(Terms::default()));
        assert_eq!(ok("# { }"), Term::Map(Terms::default()));
        assert_eq!(
            ok("#{a => 1, <<\"k\">> => [x]}"),
            map_of(vec![
                (atom("a"), int(1)),
                (binary(&b"k"[..]), list(vec![atom("x")]))
            ])
        );
        assert_eq!(
            ok("#{#{k => {}} => #{}}"),
            map_of(vec![(
                map(vec![("k", tuple(vec![]))]),
                Term::Map(Terms::default())
            )])
        );
        // A repeated key keeps its last value, as in Erlang.
        let t = ok("#{a => 1, b => 2, a => 3}");
        assert_eq!(t, map(vec![("b", int(2)), ("a", int(3))]));
        assert_eq!(t.map_pairs().map(Iterator::count), Some(2));
        assert_eq!(
            ok("#{1 => a, 1.0 => b}").map_pairs().map(Iterator::count),
            Some(2)
        );
        assert_eq!(
            ok("{ok, [{k, <<\"v\">>}, #{n => -1.5}], \"s\", 'A'}"),
            tuple(vec![
                atom("ok"),
                list(vec![
                    tuple(vec![atom("k"), binary(&b"v"[..])]),
                    map(vec![("n", Term::Float(-1.5))])
                ]),
                chars("s"),
                atom("A")
            ])
        );
    }

    #[test]
    fn funs_pids_and_friends() {
        let e = ok("fun erlang:'self'/0");
        assert!(
            matches!(&e, Term::Export(x) if x.module.as_str() == "erlang"
                && x.function.as_str() == "self" && x.arity == 0)
        );
        assert_eq!(
            ok("fun 'Elixir.Foo':bar/255").to_string(),
            "fun 'Elixir.Foo':bar/255"
        );
        fails("fun (X) -> X end", "1:5", "expected a module after `fun`");
        fails("fun m:f/256", "1:9", "expected an arity from 0 to 255");
        fails("fun m/1", "1:6", "expected `:` after the module");
        fails("<0.1.2>", "1:1", "pids cannot be written as text");
        fails(
            "{a, #Pid<a@h.5.0>}",
            "1:5",
            "pids cannot be written as text",
        );
        fails("#Port<a@h.5>", "1:1", "ports cannot be written as text");
        fails(
            "#Ref<0.1.2.3>",
            "1:1",
            "references cannot be written as text",
        );
        fails(
            "#Fun<erl_eval.6.1>",
            "1:1",
            "funs cannot be written as text",
        );
        fails("#rec{a = 1}", "1:1", "records cannot be written as text");
        fails("#[1]", "1:2", "expected `{` after `#`");
        fails("<a>", "1:1", "expected a term, found `<`");
    }

    #[test]
    fn blanks_comments_and_the_end_dot() {
        assert_eq!(ok("  ok  "), atom("ok"));
        assert_eq!(ok("ok."), atom("ok"));
        assert_eq!(ok("{a}. % done\n"), tuple(vec![atom("a")]));
        assert_eq!(
            ok("% a comment\n{a, % inside\n b}\n.\n"),
            tuple(vec![atom("a"), atom("b")])
        );
        assert_eq!(ok("\t[\r\n1\r\n]\r\n"), list(vec![int(1)]));
        // As `~p` breaks a long term over lines.
        assert_eq!(
            ok("#{a => 1,\n  b =>\n      [1,\n       2]}"),
            map(vec![("a", int(1)), ("b", list(vec![int(1), int(2)]))])
        );
        fails(
            "ok..",
            "1:3",
            "expected the end of the input after the term, found `.`",
        );
        fails(
            "ok. ok",
            "1:5",
            "expected the end of the input after the term, found `ok`",
        );
        fails("a.b", "1:2", "found `.`");
    }

    #[test]
    fn malformed_terms() {
        fails("", "1:1", "expected a term, found end of input");
        fails(
            "  % only a comment\n",
            "2:1",
            "expected a term, found end of input",
        );
        fails(".", "1:1", "expected a term, found `.`");
        fails(
            "a b",
            "1:3",
            "expected the end of the input after the term, found `b`",
        );
        fails("'", "1:1", "unterminated quoted atom, expected `'`");
        fails("\"", "1:1", "unterminated string, expected `\"`");
        fails("{a, b", "1:1", "unterminated tuple, expected `}`");
        fails("{a,", "1:1", "unterminated tuple, expected `}`");
        fails("[1, 2", "1:1", "unterminated list, expected `]`");
        fails("[1 | 2", "1:1", "unterminated list, expected `]`");
        fails("#{a => 1", "1:1", "unterminated map, expected `}`");
        fails("#{a =>", "1:1", "unterminated map, expected `}`");
        fails("{a, [1, {b", "1:9", "unterminated tuple");
        fails("{a,}", "1:4", "expected a term, found `}`");
        fails("{,}", "1:2", "expected a term, found `,`");
        fails("{a b}", "1:4", "expected `,` or `}` in a tuple, found `b`");
        fails("{a, b]", "1:6", "expected `,` or `}` in a tuple, found `]`");
        fails(
            "[1 2]",
            "1:4",
            "expected `,`, `|` or `]` in a list, found `2`",
        );
        fails(
            "[1|2|3]",
            "1:5",
            "expected `]` after the tail of a list, found `|`",
        );
        fails("[|2]", "1:2", "expected a term, found `|`");
        fails("#{a}", "1:4", "expected `=>` after a map key, found `}`");
        fails(
            "#{a := 1}",
            "1:5",
            "expected `=>` after a map key, found `:=`",
        );
        fails(
            "#{a => 1 b => 2}",
            "1:10",
            "expected `,` or `}` in a map, found `b`",
        );
        fails("{a, ;}", "1:5", "expected a term, found `;`");
        fails("(1)", "1:1", "expected a term, found `(`");
        fails("\n\n  {a,\n   ]}", "4:4", "expected a term, found `]`");
        fails(
            "{'a very long quoted atom indeed, too long to show' x}",
            "1:53",
            "found `x`",
        );
        fails(
            "[x, 'a very long quoted atom, really too long to show']]",
            "1:56",
            "found `]`",
        );
    }

    #[test]
    fn deep_nesting_costs_heap_not_stack() {
        fails(
            &"[".repeat(100_000),
            "1:100000",
            "unterminated list, expected `]`",
        );
        fails(
            &"{".repeat(1 << 20),
            "1:1048576",
            "unterminated tuple, expected `}`",
        );
        let deep = format!("{}x{}", "[{#{k => ".repeat(30_000), "}}]".repeat(30_000));
        let t = ok(&deep);
        assert_eq!(t.to_string(), deep.replace("=>", " => ").replace("  ", " "));
        let mut want = atom("x");
        for _ in 0..30_000 {
            want = list(vec![tuple(vec![map(vec![("k", want)])])]);
        }
        assert_eq!(t, want);
    }

    /// Terms with every shape the printer writes, and the text it writes for them.
    fn samples() -> Vec<Term> {
        vec![
            atom("ok"),
            atom("Elixir.Foo"),
            atom("end"),
            atom("fun"),
            atom("it's \"q\" \\ \n\t\r\x01\x7f é ☺"),
            atom(""),
            atom(&"z".repeat(255)),
            int(0),
            int(-1),
            int(i64::MAX),
            int(i64::MIN),
            Term::from(u64::MAX),
            big(true, &[1, 0, 0, 0, 0, 0, 0, 0x80]),
            big(
                false,
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
            ),
            Term::Float(1.5),
            Term::Float(-0.0),
            Term::Float(1e10),
            Term::Float(1e300),
            Term::Float(-1.2345e-300),
            Term::Float(5e-324),
            Term::Float(f64::MAX),
            Term::Float(0.1 + 0.2),
            Term::nil(),
            chars("hi"),
            chars("tab\there\x08\x0b\x0c\x1b é\u{a0}ÿ"),
            list(vec![int(1), int(2), int(-3), int(256), int(0x263a)]),
            binary(&b"hi\n\"\\"[..]),
            binary("é☺😀".as_bytes().to_vec()),
            binary(&[0u8, 1, 255][..]),
            binary(&[0xc3u8][..]),
            binary(&b"\x7f"[..]),
            binary(Bytes::new()),
            Term::Bits(Bytes::from_static(&[0xff, 0xe0]), 3),
            Term::Bits(Bytes::from_static(&[0x80]), 1),
            Term::Bits(Bytes::from_static(&[0xfe]), 7),
            tuple(vec![]),
            tuple(vec![atom("a"), tuple(vec![tuple(vec![])])]),
            improper(vec![atom("alias")], atom("x")),
            improper(vec![int(1), int(2)], binary(&b"t"[..])),
            improper(vec![int(1)], int(-2)),
            map(vec![("a", int(1)), ("b", Term::Float(1e10))]),
            map_of(vec![
                (int(-1), list(vec![Term::nil()])),
                (chars("k"), map(vec![])),
                (tuple(vec![]), improper(vec![Term::nil()], tuple(vec![]))),
            ]),
            Term::Export(Box::new(Export {
                module: Atom::from("Elixir.Mod"),
                function: Atom::from("run"),
                arity: 3,
            })),
        ]
    }

    #[test]
    fn round_trips_through_the_printer() {
        let all = samples();
        for t in all.iter().chain([&tuple(all.clone()), &list(all.clone())]) {
            let text = t.to_string();
            let back = ok(&text);
            assert_eq!(&back, t, "{text}");
            assert_eq!(back.to_string(), text);
        }
    }

    fn random_atom(rng: &mut StdRng) -> Term {
        const POOL: &[char] = &[
            'a', 'z', 'A', 'Z', '_', '@', '0', '9', ' ', '\'', '"', '\\', '\n', '\t', '\r', '\x01',
            '\x7f', 'é', 'ß', '☺', '😀', '.', '%', '$', '\u{85}', '\u{a0}',
        ];
        match rng.gen_range(0..6) {
            0 => atom(RESERVED[rng.gen_range(0..RESERVED.len())]),
            1 => atom(&"ab".repeat(rng.gen_range(100..128))),
            _ => {
                let n = rng.gen_range(0..10);
                let s: String = (0..n).map(|_| POOL[rng.gen_range(0..POOL.len())]).collect();
                atom(&s)
            }
        }
    }

    fn random_leaf(rng: &mut StdRng) -> Term {
        match rng.gen_range(0..11) {
            0 => random_atom(rng),
            1 => int(rng.gen_range(-1000..1000)),
            2 => int(rng.gen()),
            3 => {
                let mut magnitude: Vec<u8> = (0..rng.gen_range(9..40)).map(|_| rng.gen()).collect();
                if let Some(last) = magnitude.last_mut() {
                    *last = last.saturating_add(1);
                }
                big(rng.gen(), &magnitude)
            }
            4 => {
                let f = f64::from_bits(rng.gen());
                Term::Float(if f.is_finite() {
                    f
                } else {
                    rng.gen_range(-1e6..1e6)
                })
            }
            5 => binary(
                (0..rng.gen_range(0..8))
                    .map(|_| rng.gen())
                    .collect::<Vec<u8>>(),
            ),
            6 => {
                let s: String = (0..rng.gen_range(0..8))
                    .map(|_| ['a', ' ', '"', '\\', '\n', 'é', '☺', '😀'][rng.gen_range(0..8)])
                    .collect();
                binary(s.into_bytes())
            }
            7 => {
                let tail = rng.gen_range(1..=7u8);
                let mut b: Vec<u8> = (0..rng.gen_range(1..5)).map(|_| rng.gen()).collect();
                if let Some(last) = b.last_mut() {
                    *last &= 0xff << (8 - tail);
                }
                Term::Bits(Bytes::from(b), tail)
            }
            8 => list(
                (0..rng.gen_range(1..8))
                    .map(|_| {
                        int(*[32, 126, 65, 8, 13, 27, 160, 255, 34, 92]
                            .get(rng.gen_range(0..10))
                            .unwrap_or(&0))
                    })
                    .collect(),
            ),
            9 => Term::Export(Box::new(Export {
                module: match random_atom(rng) {
                    Term::Atom(a) => a,
                    _ => Atom::from("m"),
                },
                function: Atom::from("f"),
                arity: rng.gen(),
            })),
            _ => Term::nil(),
        }
    }

    fn random_term(rng: &mut StdRng, depth: u32) -> Term {
        if depth == 0 || rng.gen_bool(0.4) {
            return random_leaf(rng);
        }
        let n = rng.gen_range(0..5);
        match rng.gen_range(0..4) {
            0 => tuple((0..n).map(|_| random_term(rng, depth - 1)).collect()),
            1 => list((0..n).map(|_| random_term(rng, depth - 1)).collect()),
            2 => {
                let tail = loop {
                    let t = random_term(rng, depth - 1);
                    if !matches!(t, Term::List(_) | Term::Improper(_)) {
                        break t;
                    }
                };
                improper(
                    (0..n + 1).map(|_| random_term(rng, depth - 1)).collect(),
                    tail,
                )
            }
            _ => {
                let mut pairs: Vec<(Term, Term)> = Vec::new();
                for _ in 0..n {
                    let k = random_term(rng, depth - 1);
                    if pairs.iter().all(|(seen, _)| *seen != k) {
                        pairs.push((k, random_term(rng, depth - 1)));
                    }
                }
                map_of(pairs)
            }
        }
    }

    #[test]
    fn random_terms_round_trip() {
        let mut rng = StdRng::seed_from_u64(0x7e57_7e12);
        for i in 0..3000 {
            let t = random_term(&mut rng, 4);
            let text = t.to_string();
            let back = match parse(&text) {
                Ok(b) => b,
                Err(e) => panic!("#{i} {text}: {e}"),
            };
            assert_eq!(back, t, "#{i} {text}");
            assert_eq!(back.to_string(), text, "#{i}");
        }
    }
}
