//! X keysyms (the key codes of RFB KeyEvent, RFC 6143 §7.5.4, taken from X11's
//! `keysymdef.h`): [`char_keysym`] for typing text and [`parse_chord`] for key chords named
//! the way `xdotool key` names them (`ctrl+shift+t`, `alt+F4`, `Return`).
//!
//! Characters outside Latin-1 use the Unicode keysyms `0x0100_0000 | code point`; TigerVNC's
//! Xvnc maps any keysym missing from its keymap onto a spare keycode, so every character can
//! be typed without a keyboard layout of its own.
//!
//! Not here: sending the events (`actions`).

/// The Unicode keysym offset: `0x0100_0000 | code point`.
pub const UNICODE_KEYSYM: u32 = 0x0100_0000;
/// Return (`\n`, `\r`).
pub const RETURN: u32 = 0xff0d;
/// Tab (`\t`).
pub const TAB: u32 = 0xff09;
/// BackSpace (`\u{8}`).
pub const BACKSPACE: u32 = 0xff08;

/// The keysym that types `c`: Latin-1 printable characters (0x20–0x7e, 0xa0–0xff) are their
/// own keysym; `\n` and `\r` are Return, `\t` Tab, `\u{8}` BackSpace; everything else is
/// the Unicode keysym `0x0100_0000 | c as u32`.
pub fn char_keysym(c: char) -> u32 {
    let code = u32::from(c);
    match c {
        '\n' | '\r' => RETURN,
        '\t' => TAB,
        '\u{8}' => BACKSPACE,
        _ if (0x20..=0x7e).contains(&code) || (0xa0..=0xff).contains(&code) => code,
        _ => UNICODE_KEYSYM | code,
    }
}

/// Key names [`parse_chord`] knows (matched case-insensitively), with their keysyms. Single
/// characters are not listed: any one character is its [`char_keysym`].
pub const NAMED_KEYS: &[(&str, u32)] = &[
    // Modifiers (the left-hand key unless named otherwise).
    ("ctrl", 0xffe3),
    ("control", 0xffe3),
    ("Control_L", 0xffe3),
    ("Control_R", 0xffe4),
    ("shift", 0xffe1),
    ("Shift_L", 0xffe1),
    ("Shift_R", 0xffe2),
    ("alt", 0xffe9),
    ("Alt_L", 0xffe9),
    ("Alt_R", 0xffea),
    ("altgr", 0xfe03),
    ("ISO_Level3_Shift", 0xfe03),
    ("meta", 0xffe7),
    ("Meta_L", 0xffe7),
    ("Meta_R", 0xffe8),
    ("super", 0xffeb),
    ("win", 0xffeb),
    ("cmd", 0xffeb),
    ("Super_L", 0xffeb),
    ("Super_R", 0xffec),
    // Editing and navigation.
    ("Return", 0xff0d),
    ("Enter", 0xff0d),
    ("KP_Enter", 0xff8d),
    ("Escape", 0xff1b),
    ("Esc", 0xff1b),
    ("Tab", 0xff09),
    ("ISO_Left_Tab", 0xfe20),
    ("BackSpace", 0xff08),
    ("Delete", 0xffff),
    ("Del", 0xffff),
    ("Insert", 0xff63),
    ("Home", 0xff50),
    ("End", 0xff57),
    ("Page_Up", 0xff55),
    ("Prior", 0xff55),
    ("PageUp", 0xff55),
    ("Page_Down", 0xff56),
    ("Next", 0xff56),
    ("PageDown", 0xff56),
    ("Left", 0xff51),
    ("Up", 0xff52),
    ("Right", 0xff53),
    ("Down", 0xff54),
    ("space", 0x20),
    // Function keys.
    ("F1", 0xffbe),
    ("F2", 0xffbf),
    ("F3", 0xffc0),
    ("F4", 0xffc1),
    ("F5", 0xffc2),
    ("F6", 0xffc3),
    ("F7", 0xffc4),
    ("F8", 0xffc5),
    ("F9", 0xffc6),
    ("F10", 0xffc7),
    ("F11", 0xffc8),
    ("F12", 0xffc9),
    ("F13", 0xffca),
    ("F14", 0xffcb),
    ("F15", 0xffcc),
    ("F16", 0xffcd),
    ("F17", 0xffce),
    ("F18", 0xffcf),
    ("F19", 0xffd0),
    ("F20", 0xffd1),
    ("F21", 0xffd2),
    ("F22", 0xffd3),
    ("F23", 0xffd4),
    ("F24", 0xffd5),
    // Punctuation by X name.
    ("minus", 0x2d),
    ("plus", 0x2b),
    ("equal", 0x3d),
    ("comma", 0x2c),
    ("period", 0x2e),
    ("slash", 0x2f),
    ("backslash", 0x5c),
    ("semicolon", 0x3b),
    ("colon", 0x3a),
    ("apostrophe", 0x27),
    ("quotedbl", 0x22),
    ("grave", 0x60),
    ("asciitilde", 0x7e),
    ("bracketleft", 0x5b),
    ("bracketright", 0x5d),
    ("braceleft", 0x7b),
    ("braceright", 0x7d),
    ("parenleft", 0x28),
    ("parenright", 0x29),
    ("less", 0x3c),
    ("greater", 0x3e),
    ("question", 0x3f),
    ("exclam", 0x21),
    ("at", 0x40),
    ("numbersign", 0x23),
    ("dollar", 0x24),
    ("percent", 0x25),
    ("asciicircum", 0x5e),
    ("ampersand", 0x26),
    ("asterisk", 0x2a),
    ("underscore", 0x5f),
    ("bar", 0x7c),
    // Locks and system keys.
    ("Print", 0xff61),
    ("Menu", 0xff67),
    ("Caps_Lock", 0xffe5),
    ("Num_Lock", 0xff7f),
    ("Scroll_Lock", 0xff14),
    ("Pause", 0xff13),
    ("Sys_Req", 0xff15),
    // Media and browser keys (XF86keysym.h).
    ("XF86AudioMute", 0x1008_ff12),
    ("XF86AudioLowerVolume", 0x1008_ff11),
    ("XF86AudioRaiseVolume", 0x1008_ff13),
    ("XF86AudioPlay", 0x1008_ff14),
    ("XF86AudioStop", 0x1008_ff15),
    ("XF86AudioPrev", 0x1008_ff16),
    ("XF86AudioNext", 0x1008_ff17),
    ("XF86Back", 0x1008_ff26),
    ("XF86Forward", 0x1008_ff27),
    ("XF86Refresh", 0x1008_ff29),
    ("XF86Search", 0x1008_ff1b),
    ("XF86HomePage", 0x1008_ff18),
    ("XF86Mail", 0x1008_ff19),
    ("XF86Calculator", 0x1008_ff1d),
];

/// Why a chord could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChordError {
    /// The chord is empty or has an empty part (`ctrl++a` aside, see [`parse_chord`]).
    #[error("key chord {chord:?} has an empty key name")]
    Empty {
        /// The whole chord as given.
        chord: String,
    },
    /// A part is neither a single character nor one of [`NAMED_KEYS`].
    #[error("unknown key name {part:?} in key chord {chord:?}")]
    Unknown {
        /// The part that is not a key name.
        part: String,
        /// The whole chord as given.
        chord: String,
    },
}

/// Keysyms of an `xdotool`-style chord: key names joined by `+` (`ctrl+alt+Delete`,
/// `shift+Tab`, `super`, `ctrl+c`), pressed in order and released in reverse by the caller.
/// A part is a single character (its [`char_keysym`], case kept: `ctrl+A` sends `A`) or a
/// name from [`NAMED_KEYS`], matched case-insensitively; surrounding spaces are ignored. The
/// `+` key itself is `plus`, or a trailing `+` (`ctrl++`). Errors: [`ChordError::Empty`],
/// [`ChordError::Unknown`] naming the bad part.
pub fn parse_chord(chord: &str) -> Result<Vec<u32>, ChordError> {
    let empty = || ChordError::Empty {
        chord: chord.to_owned(),
    };
    let trimmed = chord.trim();
    let (body, plus_key) = if trimmed == "+" {
        ("", true)
    } else if let Some(body) = trimmed.strip_suffix("++") {
        (body, true)
    } else {
        (trimmed, false)
    };
    let mut keysyms = Vec::new();
    if !body.is_empty() || !plus_key {
        for part in body.split('+') {
            keysyms.push(key_keysym(part.trim()).ok_or_else(|| {
                if part.trim().is_empty() {
                    empty()
                } else {
                    ChordError::Unknown {
                        part: part.trim().to_owned(),
                        chord: chord.to_owned(),
                    }
                }
            })?);
        }
    }
    if plus_key {
        keysyms.push(char_keysym('+'));
    }
    Ok(keysyms)
}

/// One key name: a single character or a [`NAMED_KEYS`] entry.
fn key_keysym(name: &str) -> Option<u32> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(char_keysym(c));
    }
    NAMED_KEYS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|&(_, keysym)| keysym)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters() {
        assert_eq!(char_keysym('a'), 0x61);
        assert_eq!(char_keysym('A'), 0x41);
        assert_eq!(char_keysym(' '), 0x20);
        assert_eq!(char_keysym('~'), 0x7e);
        assert_eq!(char_keysym('ü'), 0xfc);
        assert_eq!(char_keysym('ß'), 0xdf);
        assert_eq!(char_keysym('\u{a0}'), 0xa0);
        assert_eq!(char_keysym('\n'), RETURN);
        assert_eq!(char_keysym('\r'), RETURN);
        assert_eq!(char_keysym('\t'), TAB);
        assert_eq!(char_keysym('\u{8}'), BACKSPACE);
        assert_eq!(char_keysym('Κ'), 0x0100_039a);
        assert_eq!(char_keysym('你'), 0x0100_4f60);
        assert_eq!(char_keysym('€'), 0x0100_20ac);
        assert_eq!(char_keysym('\u{7f}'), 0x0100_007f);
        assert_eq!(char_keysym('😀'), 0x0101_f600);
    }

    #[test]
    fn chords() {
        assert_eq!(parse_chord("ctrl+c").unwrap(), [0xffe3, 0x63]);
        assert_eq!(
            parse_chord("Control+Shift+T").unwrap(),
            [0xffe3, 0xffe1, 0x54]
        );
        assert_eq!(parse_chord("alt+F4").unwrap(), [0xffe9, 0xffc1]);
        assert_eq!(parse_chord("ALT+f4").unwrap(), [0xffe9, 0xffc1]);
        assert_eq!(parse_chord("super").unwrap(), [0xffeb]);
        assert_eq!(parse_chord("win+e").unwrap(), [0xffeb, 0x65]);
        assert_eq!(parse_chord("Return").unwrap(), [0xff0d]);
        assert_eq!(parse_chord("enter").unwrap(), [0xff0d]);
        assert_eq!(
            parse_chord("ctrl+alt+Delete").unwrap(),
            [0xffe3, 0xffe9, 0xffff]
        );
        assert_eq!(parse_chord("Page_Down").unwrap(), [0xff56]);
        assert_eq!(parse_chord("next").unwrap(), [0xff56]);
        assert_eq!(parse_chord("F24").unwrap(), [0xffd5]);
        assert_eq!(parse_chord(" ctrl + bracketleft ").unwrap(), [0xffe3, 0x5b]);
        assert_eq!(parse_chord("ctrl++").unwrap(), [0xffe3, 0x2b]);
        assert_eq!(parse_chord("+").unwrap(), [0x2b]);
        assert_eq!(parse_chord("ctrl+plus").unwrap(), [0xffe3, 0x2b]);
        assert_eq!(parse_chord("XF86AudioMute").unwrap(), [0x1008_ff12]);
        assert_eq!(parse_chord("shift+ü").unwrap(), [0xffe1, 0xfc]);
    }

    #[test]
    fn bad_chords_name_the_part() {
        assert_eq!(
            parse_chord("ctrl+foo"),
            Err(ChordError::Unknown {
                part: "foo".into(),
                chord: "ctrl+foo".into()
            })
        );
        let err = parse_chord("ctrl+Hyperdrive").unwrap_err();
        assert!(err.to_string().contains("\"Hyperdrive\""), "{err}");
        assert!(matches!(parse_chord(""), Err(ChordError::Empty { .. })));
        assert!(matches!(
            parse_chord("ctrl+"),
            Err(ChordError::Empty { .. })
        ));
        assert!(matches!(
            parse_chord("ctrl++a"),
            Err(ChordError::Empty { .. })
        ));
    }

    #[test]
    fn named_keys_are_unique_and_cover_f_keys() {
        for (i, (name, _)) in NAMED_KEYS.iter().enumerate() {
            assert!(name.chars().count() > 1, "{name} is a single character");
            assert!(
                !NAMED_KEYS[..i]
                    .iter()
                    .any(|(other, _)| other.eq_ignore_ascii_case(name)),
                "{name} listed twice"
            );
        }
        for n in 1..=24u32 {
            assert_eq!(parse_chord(&format!("F{n}")).unwrap(), [0xffbe + n - 1]);
        }
    }
}
