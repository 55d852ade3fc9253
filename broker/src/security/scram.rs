//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them: stored credentials
//! (salt, iterations, StoredKey, ServerKey: never the password) and the server's side of the
//! four-message exchange. The primitives are aws-lc-rs's (the build rustls already uses).

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Kafka's bounds on SCRAM iterations.
pub const MIN_ITERATIONS: u32 = 4096;
/// See [`MIN_ITERATIONS`].
pub const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    /// SCRAM-SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    /// Both, strongest last.
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's number for it (`ScramMechanism` in the admin APIs).
    pub fn kafka_type(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// The mechanism Kafka numbers `kind`.
    pub fn from_kafka_type(kind: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == kind)
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    fn len(self) -> usize {
        self.digest().output_len()
    }
}

/// What is stored for one user and mechanism.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// Salt (base64).
    pub salt: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(ClientKey) (base64).
    pub stored_key: String,
    /// HMAC(SaltedPassword, "Server Key") (base64).
    pub server_key: String,
}

impl Credential {
    /// The credential for `password`, with a fresh random salt.
    pub fn new(mechanism: Mechanism, password: &[u8], iterations: u32) -> Self {
        let mut salt = [0u8; 32];
        fill_random(&mut salt);
        Self::with_salt(mechanism, password, &salt, iterations)
    }

    /// The credential for `password` with `salt` (Kafka's AlterUserScramCredentials sends the
    /// salted password and salt; tests use known salts).
    pub fn with_salt(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(mechanism, password, salt, iterations);
        Self::from_salted(mechanism, &salted, salt, iterations)
    }

    /// The credential from an already salted password.
    pub fn from_salted(mechanism: Mechanism, salted: &[u8], salt: &[u8], iterations: u32) -> Self {
        let client_key = mac(mechanism, salted, b"Client Key");
        let stored_key = digest::digest(mechanism.digest(), &client_key);
        Self {
            mechanism,
            salt: STANDARD.encode(salt),
            iterations,
            stored_key: STANDARD.encode(stored_key.as_ref()),
            server_key: STANDARD.encode(mac(mechanism, salted, b"Server Key")),
        }
    }

    /// Whether `password` is this credential's (for SASL/PLAIN), in constant time.
    pub fn matches(&self, password: &[u8]) -> bool {
        let Ok(salt) = STANDARD.decode(&self.salt) else {
            return false;
        };
        let candidate = Self::with_salt(self.mechanism, password, &salt, self.iterations);
        constant_time::verify_slices_are_equal(
            candidate.stored_key.as_bytes(),
            self.stored_key.as_bytes(),
        )
        .is_ok()
    }
}

fn salted_password(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; mechanism.len()];
    let iterations = NonZeroU32::new(iterations.max(1)).expect("at least 1");
    pbkdf2::derive(mechanism.pbkdf2(), iterations, salt, password, &mut out);
    out
}

fn mac(mechanism: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(mechanism.hmac(), key);
    hmac::sign(&key, data).as_ref().to_vec()
}

/// Fills `out` from the system's secure random source.
pub fn fill_random(out: &mut [u8]) {
    rand::fill(out).expect("the system random source works");
}

/// Why an exchange failed. What the client is told never says which part was wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    /// A message that does not parse, or an unsupported option (channel binding, tokenauth).
    Malformed(&'static str),
    /// Wrong password or unknown user.
    BadCredentials,
}

/// The server's side of one exchange, between the client's first and final messages.
pub struct ServerExchange {
    mechanism: Mechanism,
    user: String,
    credential: Option<Credential>,
    client_first_bare: String,
    server_first: String,
    gs2_header: String,
    nonce: String,
}

/// The user named in a client-first message, to look its credential up.
pub fn user_of(client_first: &[u8]) -> Result<String, ScramError> {
    parse_client_first(client_first).map(|first| first.user)
}

struct ClientFirst {
    gs2_header: String,
    bare: String,
    user: String,
    nonce: String,
}

fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (gs2, bare) = match text.strip_prefix("n,") {
        Some(rest) => rest
            .split_once(',')
            .map(|(authzid, bare)| (format!("n,{authzid},"), bare))
            .ok_or(ScramError::Malformed("no GS2 header"))?,
        None if text.starts_with("y,") || text.starts_with("p=") => {
            return Err(ScramError::Malformed("channel binding is not supported"))
        }
        None => return Err(ScramError::Malformed("no GS2 header")),
    };
    let mut user = None;
    let mut nonce = None;
    for attribute in bare.split(',') {
        match attribute.split_once('=') {
            Some(("n", value)) => user = Some(unescape_name(value)?),
            Some(("r", value)) => nonce = Some(value.to_string()),
            Some(("tokenauth", _)) => {
                return Err(ScramError::Malformed("delegation tokens are not supported"))
            }
            Some(("m", _)) => return Err(ScramError::Malformed("mandatory extension")),
            _ => {}
        }
    }
    let user = user
        .filter(|u| !u.is_empty())
        .ok_or(ScramError::Malformed("no user"))?;
    let nonce = nonce
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != ','))
        .ok_or(ScramError::Malformed("no nonce"))?;
    Ok(ClientFirst {
        gs2_header: gs2,
        bare: bare.to_string(),
        user,
        nonce,
    })
}

fn unescape_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad user name escape")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ServerExchange {
    /// Answers the client's first message. Without a credential (unknown user) the exchange
    /// goes on with a made-up salt and fails at the end, so that it does not tell whether the
    /// user exists. `server_nonce` is fresh randomness (tests fix it).
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        credential: Option<Credential>,
        server_nonce: &str,
    ) -> Result<(Self, String), ScramError> {
        let first = parse_client_first(client_first)?;
        let credential = credential.filter(|c| c.mechanism == mechanism);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => {
                let mut salt = [0u8; 32];
                fill_random(&mut salt);
                (STANDARD.encode(salt), MIN_ITERATIONS)
            }
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!("r={nonce},s={salt},i={iterations}");
        let exchange = Self {
            mechanism,
            user: first.user,
            credential,
            client_first_bare: first.bare,
            server_first: server_first.clone(),
            gs2_header: first.gs2_header,
            nonce,
        };
        Ok((exchange, server_first))
    }

    /// The user this exchange authenticates.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Its mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Checks the client's final message; the server's final message if the proof holds.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut binding = None;
        let mut nonce = None;
        for attribute in without_proof.split(',') {
            match attribute.split_once('=') {
                Some(("c", value)) => binding = Some(value),
                Some(("r", value)) => nonce = Some(value),
                _ => {}
            }
        }
        if binding != Some(STANDARD.encode(self.gs2_header.as_bytes()).as_str()) {
            return Err(ScramError::Malformed("channel binding does not match"));
        }
        // Kafka accepts a final nonce that ends with the server-first one: librdkafka (2.0 at
        // least) sends its client nonce again in front of it.
        if !nonce.is_some_and(|n| n.ends_with(self.nonce.as_str())) {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let credential = self.credential.as_ref().ok_or(ScramError::BadCredentials)?;
        let decode = |text: &str| {
            STANDARD
                .decode(text)
                .map_err(|_| ScramError::BadCredentials)
        };
        let stored_key = decode(&credential.stored_key)?;
        let server_key = decode(&credential.server_key)?;
        if proof.len() != stored_key.len().max(self.mechanism.len()) {
            return Err(ScramError::BadCredentials);
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = mac(self.mechanism, &stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let candidate = digest::digest(self.mechanism.digest(), &client_key);
        constant_time::verify_slices_are_equal(candidate.as_ref(), &stored_key)
            .map_err(|_| ScramError::BadCredentials)?;
        let server_signature = mac(self.mechanism, &server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3.
    #[test]
    fn the_rfc_7677_exchange_verifies() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = Credential::with_salt(Mechanism::Sha256, b"pencil", &salt, 4096);
        let client_first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let (exchange, server_first) = ServerExchange::start(
            Mechanism::Sha256,
            client_first,
            Some(credential.clone()),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        assert_eq!(exchange.user(), "user");
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            exchange.finish(client_final.as_bytes()).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(credential.matches(b"pencil"));
        assert!(!credential.matches(b"pencil2"));

        // The same exchange with a wrong proof, or for a user without a credential, fails.
        let (exchange, _) = ServerExchange::start(
            Mechanism::Sha256,
            client_first,
            Some(credential),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        let wrong = client_final.replace("p=dHzb", "p=dHzc");
        assert_eq!(
            exchange.finish(wrong.as_bytes()),
            Err(ScramError::BadCredentials)
        );
        let (exchange, _) =
            ServerExchange::start(Mechanism::Sha256, client_first, None, "x").unwrap();
        let final_for_it =
            "c=biws,r=rOprNGfwEbeRWgbNEkqOx,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            exchange.finish(final_for_it.as_bytes()),
            Err(ScramError::BadCredentials)
        );
    }

    #[test]
    fn malformed_and_unsupported_first_messages_are_refused() {
        for message in [
            &b"y,,n=user,r=abc"[..],
            b"p=tls-unique,,n=user,r=abc",
            b"n,,n=user",
            b"n,,r=abc",
            b"n,,n=us=2Xer,r=abc",
            b"n,,n=user,r=abc,tokenauth=true",
            b"garbage",
            b"\xff\xfe",
        ] {
            assert!(
                ServerExchange::start(Mechanism::Sha512, message, None, "n").is_err(),
                "{message:?}"
            );
        }
        assert_eq!(user_of(b"n,,n=a=2Cb=3Dc,r=x").unwrap(), "a,b=c");
    }

    #[test]
    fn a_client_final_message_must_echo_the_binding_and_nonce() {
        let credential = Credential::new(Mechanism::Sha512, b"secret", MIN_ITERATIONS);
        let start = || {
            ServerExchange::start(
                Mechanism::Sha512,
                b"n,,n=u,r=abc",
                Some(credential.clone()),
                "def",
            )
            .unwrap()
            .0
        };
        for message in [
            "c=biws,r=abcXXX,p=AAAA",
            "c=biws,r=abcdefX,p=AAAA",
            "c=biws,r=abcde,p=AAAA",
            "c=eSws,r=abcdef,p=AAAA",
            "c=biws,r=abcdef",
            "c=biws,r=abcdef,p=!!",
        ] {
            assert!(start().finish(message.as_bytes()).is_err(), "{message}");
        }
    }
}
