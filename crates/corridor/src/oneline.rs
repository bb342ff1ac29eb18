//! Every log line is one line: the text formatter's fields (the message among them) with
//! line breaks and other control characters escaped, whatever text a peer or a file put in
//! them (a refused reload's multi-line TOML error, a certificate's subject).

use std::fmt;

use tracing_subscriber::{
    field::RecordFields,
    fmt::{format::Writer, FormatFields},
};

/// [`tracing_subscriber::fmt::format::DefaultFields`], one line.
#[derive(Debug, Default)]
pub(crate) struct OneLineFields(tracing_subscriber::fmt::format::DefaultFields);

impl<'w> FormatFields<'w> for OneLineFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut buf = String::new();
        self.0.format_fields(Writer::new(&mut buf), fields)?;
        writer.write_str(&corridor_journal::entry::one_line(&buf))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn control_characters_are_escaped() {
        let out = corridor_journal::entry::one_line("expected `=`\n  |\n3 | oops\r\tend\u{1b}[31m");
        assert_eq!(out, "expected `=`\\n  |\\n3 | oops\\r\\tend\\u{1b}[31m");
        assert!(!out.contains('\n'));
    }
}
