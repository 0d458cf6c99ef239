//! CSV the way the session files need it, on the `csv` crate (RFC 4180: quoted fields, doubled
//! quotes, commas and newlines inside quotes, CRLF, LF or CR line ends): records with the line
//! on which each starts, a UTF-8 byte-order mark dropped, blank lines skipped, rows of any
//! length, and an error for a quote left open at the end of the input, where the reader alone
//! would let the last field swallow the rest of the file. No type conversion.

use std::io::Read;

use crate::ForecastError;

/// One record with the (1-based) line on which it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Read after the input to tell a quote left open from a closed one: it holds no quote, so it
/// is a record of its own exactly when every quote before it was closed, and part of the open
/// field otherwise.
const END_MARK: &str = "\n\u{1}\n";

/// Splits `text` into records. Blank lines are skipped. A quote left open at the end of the
/// input is an error naming the line where its record started.
pub fn parse(text: &str) -> Result<Vec<Record>, ForecastError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes().chain(END_MARK.as_bytes()));
    let mut lines = Lines::new(text);
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ForecastError::Csv {
            line: lines.at(e.position().map_or(0, byte_of)),
            message: e.to_string(),
        })?;
        records.push(Record {
            line: lines.at(record.position().map_or(0, byte_of)),
            fields: record.iter().map(str::to_owned).collect(),
        });
    }
    match records.pop() {
        Some(last) if last.fields == ["\u{1}"] => Ok(records),
        last => Err(ForecastError::Csv {
            line: last.map_or(1, |r| r.line),
            message: "quoted field is never closed".into(),
        }),
    }
}

fn byte_of(p: &::csv::Position) -> usize {
    usize::try_from(p.byte()).unwrap_or(usize::MAX)
}

/// Line numbers of byte offsets, asked in increasing order. The reader's own count is of `\n`
/// consumed before a record, which is one short after a CRLF and leaves out blank lines.
struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// The line of the first byte at or after `byte` that is not a line end (a record starts
    /// where the previous one's terminator ends, before any blank lines).
    fn at(&mut self, byte: usize) -> usize {
        let mut start = byte.min(self.text.len()).max(self.pos);
        while matches!(self.text.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        for i in self.pos..start {
            match self.text[i] {
                b'\n' => self.line += 1,
                b'\r' if self.text.get(i + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
        }
        self.pos = start;
        self.line
    }
}

/// Writes records as CSV, each ended by `\n`, quoting the fields that need it.
pub fn write<R, F>(records: R) -> String
where
    R: IntoIterator<Item = F>,
    F: IntoIterator,
    F::Item: AsRef<[u8]>,
{
    let mut writer = ::csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    for record in records {
        writer
            .write_record(record)
            .expect("writing CSV to memory cannot fail");
    }
    let bytes = writer
        .into_inner()
        .expect("writing CSV to memory cannot fail");
    // Every field came in as UTF-8 and quoting adds only ASCII.
    String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8")
}

/// Joins fields into one CSV line (without the line end).
pub fn line(fields: &[&str]) -> String {
    let mut out = write([fields]);
    out.pop();
    out
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
    fn lines_are_counted_across_crlf_cr_and_blank_lines() {
        let recs = parse("h\r\n\r\n\"x\r\ny\"\r\nz\rw\n\nv").expect("valid");
        let got: Vec<(usize, &str)> = recs
            .iter()
            .map(|r| (r.line, r.fields[0].as_str()))
            .collect();
        assert_eq!(got, [(1, "h"), (3, "x\r\ny"), (5, "z"), (6, "w"), (8, "v")]);
    }

    #[test]
    fn bom_blank_lines_and_empty_quoted_field() {
        assert_eq!(fields("\u{feff}a\n\n\"\"\n"), vec![vec!["a"], vec![""]]);
    }

    #[test]
    fn unclosed_quote_is_an_error() {
        let err = parse("a\n\"oops,b\n").expect_err("unclosed");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = parse("a\r\nb\r\n\"x\r\ny\r\n").expect_err("unclosed");
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(parse("\"").is_err());
        assert!(parse("a,\"b\"\"").is_err());
        assert_eq!(fields("a,\"b\"\"\""), vec![vec!["a", "b\""]]);
    }

    #[test]
    fn a_record_like_the_end_mark_is_kept() {
        assert_eq!(fields("a\n\u{1}\n"), vec![vec!["a"], vec!["\u{1}"]]);
    }

    #[test]
    fn fields_are_quoted_only_when_they_need_it() {
        assert_eq!(
            line(&["a", "b, c", "say \"hi\"", ""]),
            "a,\"b, c\",\"say \"\"hi\"\"\","
        );
        assert_eq!(line(&["two\nlines", "x\ry"]), "\"two\nlines\",\"x\ry\"");
        assert_eq!(write([["h1", "h2"], ["1", "2"]]), "h1,h2\n1,2\n");
    }
}
