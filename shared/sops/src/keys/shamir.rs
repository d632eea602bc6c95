//! Shamir secret sharing over GF(2^8), byte-compatible with the copy of HashiCorp Vault's
//! implementation that sops vendors (`shamir/shamir.go`).
//!
//! sops splits the data key when a file has several key groups: group `i` gets share `i`, each
//! share being the y-values for every secret byte followed by one x-byte. The x coordinate of
//! share `i` is `i + 1` (sops does not shuffle them like Vault once did), so a share's place in
//! `key_groups` and its last byte agree.

use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShamirError {
    #[error("parts cannot be less than threshold")]
    PartsLessThanThreshold,
    #[error("parts cannot exceed 255")]
    TooManyParts,
    #[error("threshold must be at least 2")]
    ThresholdTooSmall,
    #[error("threshold cannot exceed 255")]
    ThresholdTooLarge,
    #[error("cannot split an empty secret")]
    EmptySecret,
    #[error("less than two parts cannot be used to reconstruct the secret")]
    TooFewParts,
    #[error("parts must be at least two bytes")]
    PartTooShort,
    #[error("all parts must be the same length")]
    PartLengthMismatch,
    #[error("duplicate part detected")]
    DuplicatePart,
}

/// Multiplication in GF(2^8) modulo the AES polynomial x^8 + x^4 + x^3 + x + 1, written without
/// data-dependent branches or table lookups, as sops does, so timing does not leak key bytes.
fn mult(a: u8, b: u8) -> u8 {
    let mut acc: u8 = 0;
    for i in (0..8).rev() {
        let bit = (b >> i) & 1;
        let a_or_zero = bit.wrapping_neg() & a;
        let reduce = (acc >> 7).wrapping_neg() & 0x1b;
        acc = a_or_zero ^ (reduce ^ acc.wrapping_add(acc));
    }
    acc
}

/// a^254, the multiplicative inverse for a != 0 (Fermat); 0 maps to 0.
fn inverse(a: u8) -> u8 {
    let mut b = mult(a, a);
    let mut c = mult(a, b);
    b = mult(c, c);
    b = mult(b, b);
    c = mult(b, c);
    b = mult(b, b);
    b = mult(b, b);
    b = mult(b, c);
    b = mult(b, b);
    b = mult(a, b);
    mult(b, b)
}

fn div(a: u8, b: u8) -> u8 {
    mult(a, inverse(b))
}

/// Horner evaluation of the polynomial with `coefficients[0]` as intercept.
fn evaluate(coefficients: &[u8], x: u8) -> u8 {
    if x == 0 {
        return coefficients[0];
    }
    coefficients
        .iter()
        .rev()
        .fold(0u8, |out, &coeff| mult(out, x) ^ coeff)
}

/// Lagrange interpolation at x = 0.
fn interpolate_at_zero(xs: &[u8], ys: &[u8]) -> u8 {
    let mut result = 0u8;
    for i in 0..xs.len() {
        let mut basis = 1u8;
        for j in 0..xs.len() {
            if i == j {
                continue;
            }
            basis = mult(basis, div(xs[j], xs[i] ^ xs[j]));
        }
        result ^= mult(ys[i], basis);
    }
    result
}

/// Splits `secret` into `parts` shares, any `threshold` of which rebuild it. Share `i` ends with
/// the x-byte `i + 1`. The checks and their order are sops'.
pub fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if parts < threshold {
        return Err(ShamirError::PartsLessThanThreshold);
    }
    if parts > 255 {
        return Err(ShamirError::TooManyParts);
    }
    if threshold < 2 {
        return Err(ShamirError::ThresholdTooSmall);
    }
    if threshold > 255 {
        return Err(ShamirError::ThresholdTooLarge);
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }

    let mut out: Vec<Zeroizing<Vec<u8>>> = (0..parts)
        .map(|i| {
            let mut share = Zeroizing::new(vec![0u8; secret.len() + 1]);
            share[secret.len()] = (i + 1) as u8;
            share
        })
        .collect();

    let mut coefficients = Zeroizing::new(vec![0u8; threshold]);
    for (idx, &byte) in secret.iter().enumerate() {
        coefficients[0] = byte;
        OsRng.fill_bytes(&mut coefficients[1..]);
        for (i, share) in out.iter_mut().enumerate() {
            share[idx] = evaluate(&coefficients, (i + 1) as u8);
        }
    }
    Ok(out)
}

/// Rebuilds a secret from shares made by [`split`] (or by sops). With fewer shares than the
/// threshold the result is garbage, not an error: nothing in a share records the threshold, so
/// callers find out when the data key fails to decrypt.
pub fn combine(shares: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if shares.len() < 2 {
        return Err(ShamirError::TooFewParts);
    }
    let len = shares[0].len();
    if len < 2 {
        return Err(ShamirError::PartTooShort);
    }
    if shares.iter().any(|s| s.len() != len) {
        return Err(ShamirError::PartLengthMismatch);
    }

    let mut xs = Vec::with_capacity(shares.len());
    for share in shares {
        let x = share[len - 1];
        if xs.contains(&x) {
            return Err(ShamirError::DuplicatePart);
        }
        xs.push(x);
    }

    let mut secret = Zeroizing::new(vec![0u8; len - 1]);
    let mut ys = Zeroizing::new(vec![0u8; shares.len()]);
    for (idx, out) in secret.iter_mut().enumerate() {
        for (y, share) in ys.iter_mut().zip(shares) {
            *y = share[idx];
        }
        *out = interpolate_at_zero(&xs, &ys);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slow reference multiplication (carry-less multiply, then reduce) to pin `mult`.
    fn slow_mult(a: u8, b: u8) -> u8 {
        let mut p: u16 = 0;
        for i in 0..8 {
            if (b >> i) & 1 == 1 {
                p ^= (a as u16) << i;
            }
        }
        for i in (8..16).rev() {
            if (p >> i) & 1 == 1 {
                p ^= 0x11b << (i - 8);
            }
        }
        p as u8
    }

    #[test]
    fn field_multiplication_is_the_aes_field() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mult(a, b), slow_mult(a, b), "{a} * {b}");
            }
        }
        // FIPS-197 worked example.
        assert_eq!(mult(0x57, 0x83), 0xc1);
    }

    #[test]
    fn inverse_times_value_is_one() {
        assert_eq!(inverse(0), 0);
        for a in 1..=255u8 {
            assert_eq!(mult(a, inverse(a)), 1, "{a}");
        }
    }

    #[test]
    fn shares_carry_group_index_plus_one_as_x() {
        let shares = split(&[7u8; 32], 5, 3).unwrap();
        assert_eq!(shares.len(), 5);
        for (i, s) in shares.iter().enumerate() {
            assert_eq!(s.len(), 33);
            assert_eq!(s[32], i as u8 + 1);
        }
    }

    #[test]
    fn any_threshold_subset_recombines() {
        let secret: Vec<u8> = (0..32).collect();
        let shares = split(&secret, 5, 3).unwrap();
        for a in 0..5 {
            for b in 0..5 {
                for c in 0..5 {
                    if a == b || b == c || a == c {
                        continue;
                    }
                    let got = combine(&[&shares[a], &shares[b], &shares[c]]).unwrap();
                    assert_eq!(&got[..], &secret[..]);
                }
            }
        }
        let all: Vec<&[u8]> = shares.iter().map(|s| &s[..]).collect();
        assert_eq!(&combine(&all).unwrap()[..], &secret[..]);
    }

    #[test]
    fn below_threshold_does_not_reveal_the_secret() {
        let secret = [0x42u8; 32];
        let shares = split(&secret, 3, 3).unwrap();
        let got = combine(&[&shares[0], &shares[1]]).unwrap();
        assert_ne!(&got[..], &secret[..]);
    }

    #[test]
    fn split_validation_matches_sops() {
        assert_eq!(split(b"k", 2, 3), Err(ShamirError::PartsLessThanThreshold));
        assert_eq!(split(b"k", 256, 2), Err(ShamirError::TooManyParts));
        assert_eq!(split(b"k", 3, 1), Err(ShamirError::ThresholdTooSmall));
        assert_eq!(split(b"k", 3, 0), Err(ShamirError::ThresholdTooSmall));
        assert_eq!(split(b"", 3, 2), Err(ShamirError::EmptySecret));
        assert!(split(b"k", 255, 255).is_ok());
    }

    #[test]
    fn combine_validation_matches_sops() {
        let s = split(b"secret", 3, 2).unwrap();
        assert_eq!(combine(&[&s[0]]), Err(ShamirError::TooFewParts));
        assert_eq!(combine(&[b"a", b"b"]), Err(ShamirError::PartTooShort));
        assert_eq!(
            combine(&[&s[0], &s[1][..3]]),
            Err(ShamirError::PartLengthMismatch)
        );
        assert_eq!(combine(&[&s[0], &s[0]]), Err(ShamirError::DuplicatePart));
    }

    /// Shares computed by hand from sops' algorithm: secret byte 0x2a, polynomial
    /// 0x2a + 0x03·x, at x = 1 and x = 2.
    #[test]
    fn known_linear_polynomial() {
        let s1 = [0x2a ^ 0x03, 1];
        let s2 = [0x2a ^ mult(0x03, 2), 2];
        assert_eq!(&combine(&[&s1, &s2]).unwrap()[..], &[0x2a]);
    }

    /// The shares sops 3.11 wrote for `tests/fixtures/keys/shamir.enc.yaml` (three key groups,
    /// threshold 2): any two of them rebuild a data key that opens the file's values.
    #[test]
    fn combines_shares_written_by_sops() {
        use crate::keys::age::{unwrap, AgeIdentities};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let yaml = read("shamir.enc.yaml");

        let blocks: Vec<String> = enc_blocks(&yaml).into_iter().map(|(_, b)| b).collect();
        assert_eq!(blocks.len(), 3);

        let shares: Vec<Zeroizing<Vec<u8>>> = ["k1.txt", "k2.txt", "k3.txt"]
            .iter()
            .zip(&blocks)
            .map(|(key, enc)| unwrap(enc, &AgeIdentities::parse(key, &read(key)).unwrap()).unwrap())
            .collect();
        for (i, share) in shares.iter().enumerate() {
            assert_eq!(share.len(), 33);
            assert_eq!(share[32], i as u8 + 1, "sops puts x = group index + 1");
        }

        let password = yaml
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .unwrap();
        for (a, b) in [(0, 1), (1, 2), (0, 2), (2, 0)] {
            let key = combine(&[&shares[a], &shares[b]]).unwrap();
            assert_eq!(&open_value(&key, password, b"password:"), b"hunter2");
        }
        let all: Vec<&[u8]> = shares.iter().map(|s| &s[..]).collect();
        let key = combine(&all).unwrap();
        assert_eq!(&open_value(&key, password, b"password:"), b"hunter2");
    }

    /// The other direction: our shares, wrapped by our age code, replace the `enc` blocks of
    /// the sops-written file; the real sops 3.11 then decrypts it with two of the three keys.
    #[test]
    fn sops_combines_shares_we_split() {
        use crate::keys::age::{unwrap, wrap, AgeIdentities};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let yaml = read("shamir.enc.yaml");
        let k1 = AgeIdentities::parse("k1", &read("k1.txt")).unwrap();
        let k2 = AgeIdentities::parse("k2", &read("k2.txt")).unwrap();

        // The data key, from sops' own shares of groups 1 and 2.
        let blocks = enc_blocks(&yaml);
        let s1 = unwrap(&blocks[0].1, &k1).unwrap();
        let s2 = unwrap(&blocks[1].1, &k2).unwrap();
        let data_key = combine(&[&s1, &s2]).unwrap();

        let shares = split(&data_key, 3, 2).unwrap();
        let mut rewritten = yaml.clone();
        let recipients: Vec<&str> = yaml
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- recipient: "))
            .collect();
        for (((indent, old), share), recipient) in blocks.iter().zip(&shares).zip(&recipients) {
            let new = wrap(share, &recipient.parse().unwrap()).unwrap();
            let reindent = |text: &str| {
                text.lines()
                    .map(|l| format!("{indent}{l}\n"))
                    .collect::<String>()
            };
            rewritten = rewritten.replace(&reindent(old), &reindent(&new));
        }
        assert_ne!(rewritten, yaml);

        let tmp = std::env::temp_dir().join(format!(
            "enseal-shamir-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&tmp).unwrap();
        let file = tmp.join("shamir.enc.yaml");
        std::fs::write(&file, &rewritten).unwrap();
        let keys = tmp.join("keys.txt");
        std::fs::write(&keys, read("k1.txt") + &read("k3.txt")).unwrap();
        let out = std::process::Command::new(sops_bin())
            .args(["--disable-version-check", "decrypt"])
            .arg(&file)
            .env("SOPS_AGE_KEY_FILE", &keys)
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_CMD")
            .env("HOME", &tmp)
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap();
        std::fs::remove_dir_all(&tmp).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "password: hunter2\nnested:\n    key: value\n"
        );
    }

    /// The real sops: `ENSEAL_SOPS_BIN`, else the workspace's `.venv/bin/sops` (as the
    /// interop tests find it). Missing is a broken set-up, not a skip.
    fn sops_bin() -> std::path::PathBuf {
        match std::env::var_os("ENSEAL_SOPS_BIN").filter(|p| !p.is_empty()) {
            Some(p) => p.into(),
            None => {
                let p =
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/sops");
                assert!(
                    p.is_file(),
                    "sops 3.11 not found at {} (set ENSEAL_SOPS_BIN)",
                    p.display()
                );
                p
            }
        }
    }

    /// `(indentation, block text)` of every `enc: |` block scalar of a sops YAML file.
    fn enc_blocks(yaml: &str) -> Vec<(String, String)> {
        let mut blocks = Vec::new();
        let mut current: Option<(String, String)> = None;
        for line in yaml.lines() {
            let trimmed = line.trim_start();
            if let Some((indent, buf)) = current.as_mut() {
                if indent.is_empty() {
                    *indent = line[..line.len() - trimmed.len()].to_owned();
                }
                buf.push_str(trimmed);
                buf.push('\n');
                if trimmed == "-----END AGE ENCRYPTED FILE-----" {
                    blocks.push(current.take().unwrap());
                }
            } else if trimmed == "enc: |" {
                current = Some((String::new(), String::new()));
            }
        }
        blocks
    }

    /// Test-only reading of `ENC[AES256_GCM,data:..,iv:..,tag:..,type:str]`.
    fn open_value(key: &[u8], enc: &str, aad: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::consts::U32;
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        use aes_gcm::aes::Aes256;
        use base64::Engine;
        let field = |name: &str| {
            let start = enc.find(&format!("{name}:")).unwrap() + name.len() + 1;
            let end = enc[start..].find(',').unwrap() + start;
            base64::engine::general_purpose::STANDARD
                .decode(&enc[start..end])
                .unwrap()
        };
        let mut ct = field("data");
        ct.extend(field("tag"));
        let iv = field("iv");
        let cipher = aes_gcm::AesGcm::<Aes256, U32>::new_from_slice(key).unwrap();
        cipher
            .decrypt(
                aes_gcm::Nonce::<U32>::from_slice(&iv),
                Payload { msg: &ct, aad },
            )
            .unwrap()
    }
}
