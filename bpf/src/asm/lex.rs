//! Splitting one line of assembly into tokens, with 1-based character columns.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A name: register, mnemonic, label, type (`[A-Za-z_.$][A-Za-z0-9_.$]*`).
    Ident,
    /// A number as written, without sign (`12`, `0x1f`); checked when converted.
    Num,
    /// An operator or punctuation (`+=`, `s>`, `(`, ...).
    Punct,
}

/// One token of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    /// 1-based column of the first character, counted in characters.
    pub col: usize,
}

/// Operators, longest first so that the first match is the longest one.
const PUNCTS: &[&str] = &[
    "s>>=", "<<=", ">>=", "s>=", "s<=", "s/=", "s%=", "s>", "s<", "==", "!=", ">=", "<=", "+=", "-=", "*=",
    "/=", "%=", "|=", "&=", "^=", "=", ">", "<", "+", "-", "*", "/", "%", "|", "&", "^", "(", ")", ",", ":",
    "!", "[", "]",
];

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '.' || c == '$'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$'
}

/// Tokenizes `line[start..]`; `start` must be a character boundary. Columns count from
/// the beginning of `line`. On an unexpected character, returns its column and a message.
pub(crate) fn lex(line: &str, start: usize) -> Result<Vec<Token<'_>>, (usize, String)> {
    let Some(rest) = line.get(start..) else {
        return Ok(Vec::new());
    };
    let base_col = line.get(..start).map_or(0, |s| s.chars().count()) + 1;
    let mut toks = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut col = base_col;
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            col += 1;
            continue;
        }
        let tail = &rest[i..];
        // `s>` and friends are tried before identifiers, so `s>` is never the name `s`.
        let punct = PUNCTS.iter().find(|p| tail.starts_with(**p));
        let (kind, len) = if c.is_ascii_digit() {
            (
                Kind::Num,
                tail.find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')).unwrap_or(tail.len()),
            )
        } else if let Some(p) = punct {
            (Kind::Punct, p.len())
        } else if ident_start(c) {
            (Kind::Ident, tail.find(|ch: char| !ident_char(ch)).unwrap_or(tail.len()))
        } else {
            return Err((col, format!("unexpected character {:?}", c)));
        };
        let text = &tail[..len];
        toks.push(Token { kind, text, col });
        // Every token is ASCII, so its length in bytes is its length in characters.
        col += len;
        while chars.peek().is_some_and(|&(j, _)| j < i + len) {
            chars.next();
        }
    }
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<&str> {
        lex(line, 0).unwrap().iter().map(|t| t.text).collect()
    }

    #[test]
    fn splits_operators_longest_first() {
        assert_eq!(texts("r0 s>>= 3"), ["r0", "s>>=", "3"]);
        assert_eq!(texts("if r1 s>= -5 goto +2"), ["if", "r1", "s>=", "-", "5", "goto", "+", "2"]);
        assert_eq!(texts("w0 = (s16)w1"), ["w0", "=", "(", "s16", ")", "w1"]);
        assert_eq!(
            texts("*(u64 *)(r10 - 8) = r1"),
            ["*", "(", "u64", "*", ")", "(", "r10", "-", "8", ")", "=", "r1"]
        );
        assert_eq!(texts("r0<<=r1"), ["r0", "<<=", "r1"]);
        assert_eq!(texts("r1 = 0x1f ll"), ["r1", "=", "0x1f", "ll"]);
    }

    #[test]
    fn columns_count_characters_from_line_start() {
        let line = "é: r0 = 1";
        let toks = lex(line, "é:".len()).unwrap();
        assert_eq!(toks[0].text, "r0");
        assert_eq!(toks[0].col, 4);
        assert_eq!(toks[2].col, 9);
        assert_eq!(lex("r0 = €", 0).unwrap_err().0, 6);
    }
}
