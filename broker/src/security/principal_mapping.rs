//! The principal of a client that presented a certificate on an SSL listener, as Kafka names it:
//! the certificate's subject as an RFC 2253 distinguished name (`CN=alice,OU=eng,O=Acme`),
//! turned into a user name by the first of `ssl_principal_mapping_rules` that matches it
//! (Kafka's `ssl.principal.mapping.rules`), e.g. `RULE:^CN=([^,]+),.*$/$1/L,DEFAULT`.
//!
//! A rule is `DEFAULT` (the whole name) or `RULE:pattern/replacement/[L|U]`: the pattern must
//! match the whole name; `$1`.. in the replacement are its groups; `L`/`U` lower/upper-case the
//! result. Rules are separated by commas or newlines (a pattern's own commas are inside its
//! slashes; `\/` is a slash in a pattern or replacement). A name no rule matches is refused.

use regex::Regex;
use thiserror::Error;
use x509_cert::der::Decode;

/// Why `ssl_principal_mapping_rules` could not be parsed.
#[derive(Debug, Error)]
#[error("ssl_principal_mapping_rules: {0}")]
pub struct MappingError(String);

/// What a rule does to the case of its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug)]
enum Rule {
    /// The distinguished name itself.
    Default,
    Pattern {
        /// The pattern, anchored at both ends.
        regex: Regex,
        /// In Rust's syntax (`${1}`).
        replacement: String,
        case: Case,
    },
}

/// Parsed `ssl_principal_mapping_rules`.
#[derive(Debug)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses Kafka's rule syntax; an empty text is `DEFAULT`.
    pub fn parse(text: &str) -> Result<Self, MappingError> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let (rule, after) = if let Some(after) = rest.strip_prefix("DEFAULT") {
                (Rule::Default, after)
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)?;
                let (replacement, after) = until_slash(after)?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                // Compiled alone first, so that an unbalanced `x)|(y` cannot escape the anchors.
                let groups = Regex::new(&pattern)
                    .map_err(|e| MappingError(format!("pattern {pattern:?}: {e}")))?
                    .captures_len();
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| MappingError(format!("pattern {pattern:?}: {e}")))?;
                let (replacement, highest) = rust_replacement(&replacement);
                if highest >= groups {
                    // Java throws here, failing the login; refusing the rule is clearer.
                    return Err(MappingError(format!(
                        "replacement uses group ${highest}, pattern {pattern:?} has {} groups",
                        groups - 1
                    )));
                }
                let rule = Rule::Pattern {
                    regex,
                    replacement,
                    case,
                };
                (rule, after)
            } else {
                return Err(MappingError(format!(
                    "expected DEFAULT or RULE:pattern/replacement/[LU] at {rest:?}"
                )));
            };
            rules.push(rule);
            let after = after.trim_start_matches([' ', '\t']);
            rest = match after.chars().next() {
                None => "",
                Some(',' | '\n') => after[1..].trim_start(),
                Some(_) => {
                    return Err(MappingError(format!(
                        "expected a comma or a new line at {after:?}"
                    )))
                }
            };
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(Self { rules })
    }

    /// The user name for distinguished name `dn`; `None` when no rule matches.
    pub fn map(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Pattern {
                regex,
                replacement,
                case,
            } => regex.is_match(dn).then(|| {
                let name = regex.replace(dn, replacement.as_str()).into_owned();
                match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                }
            }),
        })
    }
}

/// The subject of a DER certificate as an RFC 2253 / 4514 distinguished name (last RDN first,
/// as Java's `X500Principal.getName()`); `None` when it does not decode.
pub fn subject_of(certificate_der: &[u8]) -> Option<String> {
    let certificate = x509_cert::Certificate::from_der(certificate_der).ok()?;
    Some(certificate.tbs_certificate.subject.to_string())
}

/// Text up to the next unescaped `/` (with `\/` unescaped), and what follows that slash.
fn until_slash(text: &str) -> Result<(String, &str), MappingError> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => return Ok((out, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    Err(MappingError(format!("missing '/' after {text:?}")))
}

/// Java's `$1` group references as Rust's `${1}` (so `$1a` stays group 1 then `a`), and the
/// highest group referenced.
fn rust_replacement(java: &str) -> (String, usize) {
    let mut out = String::new();
    let mut highest = 0;
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            let mut group = String::new();
            while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                group.push(digit);
            }
            highest = highest.max(group.parse().unwrap_or(usize::MAX));
            out.push_str(&group);
            out.push('}');
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    (out, highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_the_whole_name() {
        let mapper = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(
            mapper.map("CN=alice,O=Acme").as_deref(),
            Some("CN=alice,O=Acme")
        );
        let empty = PrincipalMapper::parse("  ").unwrap();
        assert_eq!(empty.map("CN=x").as_deref(), Some("CN=x"));
    }

    #[test]
    fn the_first_matching_rule_wins_with_its_groups_and_case() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=([a-zA-Z0-9.]*),OU=ServiceUsers,O=Acme$/svc-$1/L, RULE:^CN=(.*?),.*$/$1a/U,\nDEFAULT",
        )
        .unwrap();
        assert_eq!(
            mapper.map("CN=Payments,OU=ServiceUsers,O=Acme").as_deref(),
            Some("svc-payments")
        );
        // `$1a` is group 1 followed by "a", as in Java.
        assert_eq!(mapper.map("CN=bob,O=Acme").as_deref(), Some("BOBA"));
        assert_eq!(mapper.map("CN=carol").as_deref(), Some("CN=carol"));
    }

    #[test]
    fn patterns_match_whole_names_and_unmatched_names_are_refused() {
        let mapper = PrincipalMapper::parse("RULE:CN=([^,]+)/$1/").unwrap();
        assert_eq!(mapper.map("CN=alice").as_deref(), Some("alice"));
        assert_eq!(mapper.map("CN=alice,O=Acme"), None);
        let escaped = PrincipalMapper::parse(r"RULE:^CN=a\/b$/x\/y/").unwrap();
        assert_eq!(escaped.map("CN=a/b").as_deref(), Some("x/y"));
    }

    #[test]
    fn malformed_rules_are_refused_with_the_place() {
        for bad in [
            "RULE:^CN=(.*)$",
            "RULE:^CN=(.*)$/$1",
            "RULE:^CN=((.*)$/$1/",
            "DEFAULTS",
            "RULE:x/y/L junk",
            "ALLOW",
            "RULE:^CN=(.*)$/$2/",
            "RULE:x)|(y/$1/",
        ] {
            let error = PrincipalMapper::parse(bad).unwrap_err().to_string();
            assert!(
                error.starts_with("ssl_principal_mapping_rules: "),
                "{bad}: {error}"
            );
        }
    }

    /// `openssl req -x509 -subj "/C=US/O=Acme, Inc./OU=eng/CN=alice"`; `openssl x509 -subject
    /// -nameopt RFC2253` prints `CN=alice,OU=eng,O=Acme\, Inc.,C=US` for it.
    const ALICE: &str = "-----BEGIN CERTIFICATE-----\nMIIB2DCCAX2gAwIBAgIUMUqv+yQuevsXlMvBhgEVdBoy2FkwCgYIKoZIzj0EAwIw\nQDELMAkGA1UEBhMCVVMxEzARBgNVBAoMCkFjbWUsIEluYy4xDDAKBgNVBAsMA2Vu\nZzEOMAwGA1UEAwwFYWxpY2UwIBcNMjYxMjA3MTg1MTM0WhgPMjEyNjExMTMxODUx\nMzRaMEAxCzAJBgNVBAYTAlVTMRMwEQYDVQQKDApBY21lLCBJbmMuMQwwCgYDVQQL\nDANlbmcxDjAMBgNVBAMMBWFsaWNlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\nzAlfx60o9HYS0g6qpV0nv7Vx4lzdOnlrLY9FnEYoYzdY8W2Xcz3JsuN1LlRVsfRL\nybpijkU1pxzyTR+GSx3QfaNTMFEwHQYDVR0OBBYEFI1ulu6CsJjtOvkjQtuXg/R2\nFtiTMB8GA1UdIwQYMBaAFI1ulu6CsJjtOvkjQtuXg/R2FtiTMA8GA1UdEwEB/wQF\nMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAJZsukiKHU/0/a2HyTOs8qDzeeHXFP9e\nbPKt6D5YknfKAiEAuKSaqkSJN+YQvUWV8dg4FqV0hcmDkwI4peL1CevvFvg=\n-----END CERTIFICATE-----";

    #[test]
    fn the_subject_reads_last_rdn_first_with_commas_escaped() {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(ALICE.as_bytes()).unwrap();
        let dn = subject_of(&der).unwrap();
        assert_eq!(dn, r"CN=alice,OU=eng,O=Acme\, Inc.,C=US");
        let mapper = PrincipalMapper::parse("RULE:^CN=([^,]+),.*$/$1/").unwrap();
        assert_eq!(mapper.map(&dn).as_deref(), Some("alice"));
    }

    proptest::proptest! {
        /// Hostile configuration and hostile names: parsing any rule text and mapping any name
        /// with what parsed never panics.
        #[test]
        fn any_rules_and_any_names_parse_or_fail_without_panicking(
            rules in "(DEFAULT|RULE:[^/]{0,12}/[^/]{0,8}/[LU]?)([,\n ]{1,2}(DEFAULT|RULE:[^/]{0,12}/[^/]{0,8}/[LU]?)){0,3}|.{0,40}",
            dn in ".{0,60}",
        ) {
            if let Ok(mapper) = PrincipalMapper::parse(&rules) {
                let _ = mapper.map(&dn);
            }
        }

        /// Any bytes as a client certificate's DER: decoded or refused, never a panic.
        #[test]
        fn any_bytes_as_a_certificate_decode_or_not_without_panicking(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            let _ = subject_of(&bytes);
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(subject_of(b"not a certificate"), None);
        assert_eq!(subject_of(&[]), None);
    }
}
