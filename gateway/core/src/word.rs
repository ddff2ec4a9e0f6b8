//! Config words: a setting that a config file names by a word (`holding`, `SignAndEncrypt`,
//! `poll`), kept as its enum from the moment the file is read. Each protocol crate lists its
//! words once, beside its enum; the gateway's config checker takes them from there.

/// An enum whose values a config file names by a word.
pub trait Word: Copy + PartialEq + 'static {
    /// Every value, in the order a message offers them.
    const ALL: &'static [Self];

    /// Its word in a config file.
    fn word(self) -> &'static str;

    /// The value `word` names, if any (exact, case included, as every config key is).
    fn from_word(word: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.word() == word)
    }

    /// The words for a message: `a, b or c`.
    fn choices() -> String {
        let words: Vec<&str> = Self::ALL.iter().map(|v| v.word()).collect();
        match words.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Colour {
        Red,
        Green,
        Blue,
    }

    impl Word for Colour {
        const ALL: &'static [Self] = &[Colour::Red, Colour::Green, Colour::Blue];

        fn word(self) -> &'static str {
            match self {
                Colour::Red => "red",
                Colour::Green => "green",
                Colour::Blue => "blue",
            }
        }
    }

    #[test]
    fn words_name_their_values_exactly() {
        let cases = [
            ("red", Some(Colour::Red)),
            ("blue", Some(Colour::Blue)),
            ("Red", None),
            (" red", None),
            ("", None),
        ];
        for (word, want) in cases {
            assert_eq!(Colour::from_word(word), want, "{word:?}");
        }
        assert_eq!(Colour::choices(), "red, green or blue");
        for c in Colour::ALL {
            assert_eq!(Colour::from_word(c.word()), Some(*c));
        }
    }
}
