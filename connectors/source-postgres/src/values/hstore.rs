//! `hstore` (extension type) as `hstore_out` prints it: `"a"=>"1", "b"=>NULL`, keys and values
//! quoted with `"` and `\` escaped by a backslash. Unquoted tokens are accepted too.

/// Parse an hstore literal into its pairs, in the order printed; a `NULL` value is `None`.
pub(super) fn parse(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut reader = Reader {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    let mut pairs = Vec::new();
    loop {
        reader.skip_whitespace();
        if reader.pos == text.len() {
            return Some(pairs);
        }
        if !pairs.is_empty() {
            reader.expect(b',')?;
            reader.skip_whitespace();
        }
        let (key, _) = reader.token()?;
        reader.skip_whitespace();
        reader.expect(b'=')?;
        reader.expect(b'>')?;
        reader.skip_whitespace();
        let (value, quoted) = reader.token()?;
        let value = (quoted || !value.eq_ignore_ascii_case("NULL")).then_some(value);
        pairs.push((key, value));
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.bytes.get(self.pos) == Some(&byte)).then(|| self.pos += 1)
    }

    /// A quoted (`"..."`, backslash escapes) or unquoted (up to whitespace, `=`, `,`) token, and
    /// whether it was quoted.
    fn token(&mut self) -> Option<(String, bool)> {
        if self.bytes.get(self.pos) == Some(&b'"') {
            let start = self.pos + 1;
            let mut at = start;
            let mut out = String::new();
            let mut run_start = start;
            loop {
                match *self.bytes.get(at)? {
                    b'"' => break,
                    b'\\' => {
                        out.push_str(&self.text[run_start..at]);
                        // The escaped character may be multi-byte: copy it whole.
                        let escaped = self.text.get(at + 1..)?.chars().next()?;
                        out.push(escaped);
                        at += 1 + escaped.len_utf8();
                        run_start = at;
                    }
                    _ => at += 1,
                }
            }
            out.push_str(&self.text[run_start..at]);
            self.pos = at + 1;
            return Some((out, true));
        }
        let start = self.pos;
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|&b| !b.is_ascii_whitespace() && b != b'=' && b != b',')
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| (self.text[start..self.pos].to_owned(), false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, value: Option<&str>) -> (String, Option<String>) {
        (key.to_string(), value.map(str::to_string))
    }

    #[test]
    fn hstore_pairs_keep_order_and_null_values() {
        assert_eq!(
            parse(r#""a"=>"1", "b"=>NULL"#),
            Some(vec![pair("a", Some("1")), pair("b", None)])
        );
        assert_eq!(parse(""), Some(vec![]));
    }

    #[test]
    fn hstore_escapes_and_quoted_null_are_kept_as_text() {
        assert_eq!(
            parse(r#""k\"ey"=>"va\\lue", "n"=>"NULL", "é"=>"ü""#),
            Some(vec![
                pair("k\"ey", Some("va\\lue")),
                pair("n", Some("NULL")),
                pair("é", Some("ü"))
            ])
        );
    }

    #[test]
    fn unquoted_hstore_tokens_are_accepted() {
        assert_eq!(
            parse("a=>1,b=>null"),
            Some(vec![pair("a", Some("1")), pair("b", None)])
        );
    }

    #[test]
    fn malformed_hstore_is_rejected() {
        for bad in [
            r#""a"=>"#,
            r#""a"=>"1" "b"=>"2""#,
            r#""a"->"1""#,
            r#""a"=>"1"#,
            r#""a\"#,
        ] {
            assert_eq!(parse(bad), None, "{bad:?} accepted");
        }
    }
}
