//! The DES quirk of VNC Authentication (RFC 6143 §7.2.2), shared by the server side (the
//! `-rfbauth` password file our desktops start with) and the client side (the link's
//! challenge response): a password's first 8 bytes, NUL-padded, are the DES key, with the
//! bits of every key byte reversed (the original VNC's `d3des` took them least significant
//! bit first).
//!
//! The password file is what `vncpasswd -f` writes: the full-access password, then the
//! view-only password, each DES-encrypted under the fixed key `23 82 107 6 35 78 88 7`.

use des::{
    Des,
    cipher::{BlockEncrypt, KeyInit},
};

/// The fixed key `vncpasswd` obfuscates stored passwords with.
const OBFUSCATION_KEY: [u8; 8] = [23, 82, 107, 6, 35, 78, 88, 7];

/// The DES key VNC Authentication derives from `password`: its first 8 bytes (NUL-padded),
/// each byte's bits reversed.
pub fn des_key(password: &[u8]) -> [u8; 8] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password) {
        *k = p.reverse_bits();
    }
    key
}

/// DES-ECB encrypts each 8-byte block of `data` under the VNC key of `password` (`data` must
/// be a multiple of 8 bytes: 16 for a challenge, 8 for a stored password).
pub fn encrypt(password: &[u8], data: &[u8]) -> Vec<u8> {
    debug_assert_eq!(data.len() % 8, 0);
    let cipher = Des::new(&des_key(password).into());
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks_exact(8) {
        let mut block: [u8; 8] = chunk.try_into().expect("chunks of 8");
        let mut b = block.into();
        cipher.encrypt_block(&mut b);
        block = b.into();
        out.extend_from_slice(&block);
    }
    out
}

/// The 16-byte `-rfbauth` file for a full-access and a view-only password (the format of
/// `vncpasswd -f`, TigerVNC's `VncAuthPasswdFile`).
pub fn password_file(control: &str, view: &str) -> Vec<u8> {
    let mut file = Vec::with_capacity(16);
    for password in [control, view] {
        let mut block = [0u8; 8];
        for (b, p) in block.iter_mut().zip(password.as_bytes()) {
            *b = *p;
        }
        // The stored form is the password encrypted under the fixed key, taken as a VNC
        // password (so with the same bit reversal).
        file.extend(encrypt(&OBFUSCATION_KEY, &block));
    }
    file
}

/// The challenge response of VNC Authentication: the 16-byte `challenge` encrypted under the
/// key of `password`.
pub fn challenge_response(password: &str, challenge: &[u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&encrypt(password.as_bytes(), challenge));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bits_are_reversed() {
        assert_eq!(des_key(b"\x01\x80ab"), [0x80, 0x01, 0x86, 0x46, 0, 0, 0, 0]);
        // Only the first 8 bytes count.
        assert_eq!(des_key(b"123456789"), des_key(b"12345678"));
    }

    /// `printf 'password\npassword\n' | vncpasswd -f | xxd` on TigerVNC 1.12 writes the
    /// same 8 bytes twice: `dbd83cfd727a1458`.
    #[test]
    fn password_file_matches_vncpasswd() {
        let file = password_file("password", "password");
        assert_eq!(file.len(), 16);
        let hex: String = file[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "dbd83cfd727a1458");
        assert_eq!(file[..8], file[8..]);
    }
}
