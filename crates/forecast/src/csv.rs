//! A small RFC 4180 CSV reader and writer: quoted fields, doubled quotes, commas and newlines
//! inside quotes, CRLF or LF line ends, a UTF-8 byte-order mark. Enough for the council exports
//! and the canonical session file; no type conversion.

use crate::ForecastError;

/// One record with the (1-based) line on which it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Splits `text` into records. Blank lines are skipped. A quote left open at the end of the
/// input is an error naming the line where the field started.
pub fn parse(text: &str) -> Result<Vec<Record>, ForecastError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut quote_line = 0;
    let mut line = 1;
    let mut record_line = 1;
    // Whether the current record has any content (distinguishes a blank line from `""`).
    let mut touched = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                quote_line = line;
                touched = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                touched = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                if touched || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    records.push(Record {
                        line: record_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                touched = false;
                line += 1;
                record_line = line;
            }
            _ => {
                field.push(c);
                touched = true;
            }
        }
    }
    if in_quotes {
        return Err(ForecastError::Csv {
            line: quote_line,
            message: "quoted field is never closed".into(),
        });
    }
    if touched || !field.is_empty() {
        fields.push(field);
        records.push(Record {
            line: record_line,
            fields,
        });
    }
    Ok(records)
}

/// Quotes a field when it needs it.
pub fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) || field.starts_with(' ') || field.ends_with(' ') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Joins fields into one CSV line (without the line end).
pub fn line(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| quote(f))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        parse(text)
            .expect("valid csv")
            .into_iter()
            .map(|r| r.fields)
            .collect()
    }

    #[test]
    fn quoted_commas_quotes_and_newlines() {
        let got = fields("a,\"b, c\",\"say \"\"hi\"\"\"\r\n1,\"two\nlines\",\n");
        assert_eq!(
            got,
            vec![vec!["a", "b, c", "say \"hi\""], vec!["1", "two\nlines", ""]]
        );
    }

    #[test]
    fn lines_are_counted_across_quoted_newlines() {
        let recs = parse("h\n\"x\ny\"\nz\n").expect("valid");
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 4]);
    }

    #[test]
    fn bom_blank_lines_and_empty_quoted_field() {
        assert_eq!(fields("\u{feff}a\n\n\"\"\n"), vec![vec!["a"], vec![""]]);
    }

    #[test]
    fn unclosed_quote_is_an_error() {
        let err = parse("a\n\"oops,b\n").expect_err("unclosed");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
