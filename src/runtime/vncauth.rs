//! VNC Authentication (RFC 6143 §7.2.2) and the password file `Xvnc -rfbauth` reads: the
//! one place both sides of it live, the runtime writing a desktop's password file and the
//! desktop link answering its challenge (`desktop::rfb` re-exports it).
//!
//! VNC uses single DES in ECB mode with the password as the key, with one quirk the RFC
//! leaves out: each key byte's bits are reversed before use (the original `d3des` code
//! loads key bits least significant first). [`vnc_des`] applies it; [`challenge_response`]
//! answers the server's 16-byte challenge; [`obfuscated_password`] and [`rfbauth_file`]
//! produce the bytes `vncpasswd -f` writes (the password DES-encrypted under a fixed,
//! public key: obfuscation, not protection).
//!
//! Not here: the security handshake around the challenge (`desktop::rfb::handshake`).

use des::{
    Des,
    cipher::{Block, BlockEncrypt, KeyInit},
};

/// Length of a VNC password key and of one DES block (bytes).
pub const KEY_LEN: usize = 8;
/// Length of the VncAuth challenge and response (bytes, RFC 6143 §7.2.2).
pub const CHALLENGE_LEN: usize = 16;
/// The fixed key `vncpasswd` encrypts passwords under (public since the 1990s).
pub const RFBAUTH_FIXED_KEY: [u8; KEY_LEN] = [23, 82, 107, 6, 35, 78, 88, 7];

/// The key VNC derives from `password`: its first 8 bytes (UTF-8), NUL-padded. Longer
/// passwords are cut, as every VNC server and viewer does.
pub fn password_key(password: &str) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    for (slot, byte) in key.iter_mut().zip(password.as_bytes()) {
        *slot = *byte;
    }
    key
}

/// Encrypts `data` in place with DES-ECB under `key`, each key byte's bits reversed (the VNC
/// quirk). `data.len()` must be a multiple of 8 bytes; a trailing partial block is left as
/// is (callers only pass 8 or 16 bytes).
pub fn vnc_des(key: [u8; KEY_LEN], data: &mut [u8]) {
    let cipher = Des::new(&key.map(u8::reverse_bits).into());
    for chunk in data.chunks_exact_mut(KEY_LEN) {
        let mut block = Block::<Des>::default();
        block.copy_from_slice(chunk);
        cipher.encrypt_block(&mut block);
        chunk.copy_from_slice(&block);
    }
}

/// The VncAuth response to `challenge`: the challenge DES-encrypted under the password key
/// (RFC 6143 §7.2.2).
pub fn challenge_response(password: &str, challenge: &[u8; CHALLENGE_LEN]) -> [u8; CHALLENGE_LEN] {
    let mut response = *challenge;
    vnc_des(password_key(password), &mut response);
    response
}

/// `password` as `vncpasswd -f` writes it: 8 bytes, the password key DES-encrypted under
/// [`RFBAUTH_FIXED_KEY`].
pub fn obfuscated_password(password: &str) -> [u8; KEY_LEN] {
    let mut block = password_key(password);
    vnc_des(RFBAUTH_FIXED_KEY, &mut block);
    block
}

/// The contents of an `Xvnc -rfbauth` file: the full-control password (8 bytes, see
/// [`obfuscated_password`]), then, when given, the view-only password (8 more bytes).
/// TigerVNC reads the second one as the password for view-only connections.
pub fn rfbauth_file(password: &str, view_only: Option<&str>) -> Vec<u8> {
    let mut file = obfuscated_password(password).to_vec();
    if let Some(view_only) = view_only {
        file.extend_from_slice(&obfuscated_password(view_only));
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_with_reversed_key_bits_matches_the_fips_vector() {
        // FIPS 46 worked example: key 133457799BBCDFF1, plaintext 0123456789ABCDEF,
        // ciphertext 85E813540F0AB405. VNC reverses each key byte first, so feed it the
        // reversed key to get the plain DES result.
        let key = [0x13u8, 0x34, 0x57, 0x79, 0x9b, 0xbc, 0xdf, 0xf1].map(u8::reverse_bits);
        let mut block = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        vnc_des(key, &mut block);
        assert_eq!(block, [0x85, 0xe8, 0x13, 0x54, 0x0f, 0x0a, 0xb4, 0x05]);
    }

    #[test]
    fn obfuscation_matches_vncpasswd() {
        // `printf 'password\n' | vncpasswd -f | xxd` → dbd8 3cfd 727a 1458
        assert_eq!(
            obfuscated_password("password"),
            [0xdb, 0xd8, 0x3c, 0xfd, 0x72, 0x7a, 0x14, 0x58]
        );
        // `printf 'pass\n' | vncpasswd -f | xxd` → 2562 d297 9f13 a743
        assert_eq!(
            obfuscated_password("pass"),
            [0x25, 0x62, 0xd2, 0x97, 0x9f, 0x13, 0xa7, 0x43]
        );
        let file = rfbauth_file("password", Some("pass"));
        assert_eq!(file.len(), 16);
        assert_eq!(file[8..], obfuscated_password("pass"));
        assert_eq!(rfbauth_file("password", None).len(), 8);
    }

    #[test]
    fn keys_are_cut_and_padded() {
        assert_eq!(password_key("abc"), *b"abc\0\0\0\0\0");
        assert_eq!(password_key("0123456789"), *b"01234567");
        // The response depends on the first 8 bytes only.
        let challenge = [7u8; CHALLENGE_LEN];
        assert_eq!(
            challenge_response("01234567", &challenge),
            challenge_response("0123456789", &challenge)
        );
        assert_ne!(
            challenge_response("01234567", &challenge),
            challenge_response("01234568", &challenge)
        );
    }

    #[test]
    fn response_is_two_ecb_blocks() {
        // ECB: each 8-byte half is encrypted alone, so equal halves give equal halves.
        let mut challenge = [0u8; CHALLENGE_LEN];
        challenge[..8].copy_from_slice(b"halfhalf");
        challenge[8..].copy_from_slice(b"halfhalf");
        let response = challenge_response("secret", &challenge);
        assert_eq!(response[..8], response[8..]);
        let mut half = *b"halfhalf";
        vnc_des(password_key("secret"), &mut half);
        assert_eq!(response[..8], half);
    }
}
