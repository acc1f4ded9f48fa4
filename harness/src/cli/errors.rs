//! What the command line prints of an error: every value it quotes cut to a couple of
//! hundred characters. Errors below quote the values they refuse whole; a configuration
//! or an argument may hold megabytes in one, so the cut happens here, where errors are
//! printed, once for all of them.

/// The longest piece of a user's value an error quotes.
pub const QUOTE_LIMIT: usize = 200;

/// `text` with every piece between two of `quotes` longer than [`QUOTE_LIMIT`]
/// characters cut to that, followed by `…` and how many characters were cut (an
/// unclosed quote runs to the end).
pub fn clip_quotes_in(text: &str, quotes: &[char]) -> String {
    let mut out = String::with_capacity(text.len().min(8 * QUOTE_LIMIT));
    let mut quote: Option<char> = None;
    let (mut inside, mut cut) = (0usize, 0usize);
    let flush = |out: &mut String, cut: &mut usize| {
        if *cut > 0 {
            out.push_str(&format!("… ({} characters cut)", *cut));
            *cut = 0;
        }
    };
    for c in text.chars() {
        match quote {
            Some(q) if c == q => {
                flush(&mut out, &mut cut);
                out.push(c);
                quote = None;
            }
            Some(_) if inside >= QUOTE_LIMIT => cut += 1,
            Some(_) => {
                inside += 1;
                out.push(c);
            }
            None => {
                if quotes.contains(&c) {
                    quote = Some(c);
                    inside = 0;
                }
                out.push(c);
            }
        }
    }
    flush(&mut out, &mut cut);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_short_quotes_and_counts_what_it_cuts() {
        assert_eq!(clip_quotes_in("unknown field `abc`", &['`']), "unknown field `abc`");
        let long = format!("unknown variant `{}`, expected one of `a`", "y".repeat(250));
        let clipped = clip_quotes_in(&long, &['`', '"']);
        assert_eq!(clipped, format!("unknown variant `{}… (50 characters cut)`, expected one of `a`", "y".repeat(200)));
    }
}
