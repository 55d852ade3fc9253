//! Parsing of storage URLs into backend settings.
//!
//! Accepted forms:
//! - `fs:///abs/path`, `fs:/abs/path`: a local directory.
//! - `fs://./relative`, `fs://relative`, `fs:relative`: relative to the current directory,
//!   resolved to an absolute path at open so that a later `chdir` cannot move the data.
//! - `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1`: any query key that
//!   names an OpenDAL `S3Config` field is passed through (e.g. `enable_virtual_host_style=true`,
//!   `disable_config_load=true`). Credentials come from the environment as OpenDAL reads them
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, profiles...).
//! - Other OpenDAL services, each compiled in only with its cargo feature of this crate
//!   (`hdfs`, `webhdfs`, `azblob`, `gcs`, `oss`): `hdfs://namenode:8020/path`,
//!   `webhdfs://namenode:9870/path`, `azblob://container/prefix?endpoint=...&account_name=...`,
//!   `gcs://bucket/prefix`, `oss://bucket/prefix?endpoint=...`. Query keys are passed to the
//!   service's OpenDAL config as they are; credentials come from the environment or the
//!   query (redacted in logs).

use std::collections::BTreeMap;
use std::path::{Component, PathBuf};

use crate::StorageError;

/// A parsed storage URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StorageUrl {
    /// Local filesystem rooted at an absolute directory.
    Fs { root: PathBuf },
    /// S3-compatible object store.
    S3 {
        bucket: String,
        /// Key prefix, normalised to `/prefix/` (or `/`).
        root: String,
        /// Further `S3Config` fields from the query string.
        options: BTreeMap<String, String>,
    },
    /// Another OpenDAL service, built through OpenDAL's registry by scheme name.
    Service {
        /// The URL's scheme (`hdfs`, `webhdfs`, `azblob`, `gcs`, `oss`).
        url_scheme: String,
        /// OpenDAL's scheme name and configuration, `root` included.
        scheme: &'static str,
        options: BTreeMap<String, String>,
    },
}

/// URL scheme → (OpenDAL scheme, config key that the URL's host fills, how the host becomes
/// its value).
const SERVICES: &[(&str, &str, &str, HostForm)] = &[
    ("hdfs", "hdfs-native", "name_node", HostForm::Url("hdfs")),
    ("webhdfs", "webhdfs", "endpoint", HostForm::Url("http")),
    ("azblob", "azblob", "container", HostForm::Name),
    ("gcs", "gcs", "bucket", HostForm::Name),
    ("oss", "oss", "bucket", HostForm::Name),
];

#[derive(Clone, Copy)]
enum HostForm {
    /// `scheme://host[:port]`
    Url(&'static str),
    /// The bare host (a bucket or container name).
    Name,
}

/// Query keys whose values must not show up in logs.
fn is_secret_option(key: &str) -> bool {
    key.contains("secret") || key.contains("token") || key.ends_with("customer_key")
}

/// The directory an `fs://` URL names (made absolute), for settings that need a local
/// directory, such as a WAL in front of an object store.
pub fn fs_path(url: &str) -> Result<std::path::PathBuf, StorageError> {
    match StorageUrl::parse(url)? {
        StorageUrl::Fs { root } => Ok(root),
        _ => Err(StorageError::InvalidUrl(format!(
            "{url:?}: a local directory is needed here (fs:///path)"
        ))),
    }
}

impl StorageUrl {
    /// Parses `url`; see the module documentation for the accepted forms.
    pub(crate) fn parse(url: &str) -> Result<StorageUrl, StorageError> {
        let invalid = |why: &str| StorageError::InvalidUrl(format!("{url:?}: {why}"));
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(invalid(
                "missing scheme; expected fs:///path or s3://bucket/prefix",
            ));
        };
        match scheme {
            "fs" => parse_fs(rest).map_err(|why| invalid(&why)),
            "s3" => parse_s3(url).map_err(|why| invalid(&why)),
            other => match SERVICES.iter().find(|s| s.0 == other) {
                Some(service) => parse_service(url, service).map_err(|why| invalid(&why)),
                None => Err(invalid(&format!(
                    "unsupported scheme {other:?}; supported schemes are fs, s3, hdfs, webhdfs, \
                     azblob, gcs and oss"
                ))),
            },
        }
    }

    /// A canonical form for logs: absolute path for `fs`, secrets redacted for `s3`.
    pub(crate) fn display(&self) -> String {
        match self {
            StorageUrl::Fs { root } => format!("fs://{}", root.display()),
            StorageUrl::S3 {
                bucket,
                root,
                options,
            } => {
                let query: Vec<String> = options
                    .iter()
                    .map(|(k, v)| {
                        let shown = if is_secret_option(k) { "***" } else { v };
                        format!("{k}={shown}")
                    })
                    .collect();
                let mut out = format!("s3://{bucket}{root}");
                if !query.is_empty() {
                    out.push('?');
                    out.push_str(&query.join("&"));
                }
                out
            }
            StorageUrl::Service {
                url_scheme,
                options,
                ..
            } => {
                let shown: Vec<String> = options
                    .iter()
                    .map(|(k, v)| {
                        let v = if is_secret_option(k) || k.contains("key") {
                            "***"
                        } else {
                            v
                        };
                        format!("{k}={v}")
                    })
                    .collect();
                format!("{url_scheme}:{{{}}}", shown.join(", "))
            }
        }
    }
}

fn parse_service(
    raw: &str,
    &(url_scheme, scheme, host_key, form): &(&str, &'static str, &str, HostForm),
) -> Result<StorageUrl, String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(format!(
            "missing {host_key} ({url_scheme}://{host_key}/path)"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the url authority".into());
    }
    let host_value = match (form, url.port()) {
        (HostForm::Url(prefix), Some(port)) => format!("{prefix}://{host}:{port}"),
        (HostForm::Url(prefix), None) => format!("{prefix}://{host}"),
        (HostForm::Name, None) => host.to_string(),
        (HostForm::Name, Some(_)) => return Err("a port belongs in the endpoint option".into()),
    };
    let prefix = url.path().trim_matches('/');
    let root = if prefix.is_empty() {
        "/".to_string()
    } else {
        format!("/{prefix}/")
    };
    let mut options = BTreeMap::from([
        (host_key.to_string(), host_value),
        ("root".to_string(), root),
    ]);
    for (key, value) in url.query_pairs() {
        if options
            .insert(key.to_string(), value.into_owned())
            .is_some()
        {
            return Err(format!(
                "option {key:?} given twice or set by the url itself"
            ));
        }
    }
    Ok(StorageUrl::Service {
        url_scheme: url_scheme.to_string(),
        scheme,
        options,
    })
}

/// `rest` is what follows `fs:`.
fn parse_fs(rest: &str) -> Result<StorageUrl, String> {
    // `fs:///abs` and `fs://rel` carry an empty or path-like "authority"; either way the path is
    // everything after the two slashes.
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.contains('?') || path.contains('#') {
        return Err("fs urls take no query or fragment".into());
    }
    let path = PathBuf::from(path);
    let absolute = if path.is_absolute() {
        path
    } else {
        let cwd = std::env::current_dir()
            .map_err(|e| format!("cannot resolve relative path against current dir: {e}"))?;
        cwd.join(path)
    };
    // Drop `.` components so logs show `/cwd/data`, not `/cwd/./data`.
    let root: PathBuf = absolute
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    Ok(StorageUrl::Fs { root })
}

fn parse_s3(raw: &str) -> Result<StorageUrl, String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    let bucket = url.host_str().unwrap_or_default().to_string();
    if bucket.is_empty() {
        return Err("missing bucket (s3://bucket/prefix)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the url; use AWS_* environment variables".into());
    }
    if url.port().is_some() {
        return Err("a port belongs in the endpoint option, not after the bucket".into());
    }
    if url.fragment().is_some() {
        return Err("fragments are not supported".into());
    }
    if url.path().contains('%') {
        return Err("percent-encoded prefixes are not supported".into());
    }
    let prefix = url.path().trim_matches('/');
    let root = if prefix.is_empty() {
        "/".to_string()
    } else {
        format!("/{prefix}/")
    };

    let known = s3_option_names();
    let mut options = BTreeMap::new();
    for (key, value) in url.query_pairs() {
        let key = key.into_owned();
        if key == "bucket" || key == "root" {
            return Err(format!("{key} comes from the url path, not the query"));
        }
        if !known.contains(&key) {
            return Err(format!(
                "unknown s3 option {key:?}; known options: {}",
                known.join(", ")
            ));
        }
        if options.insert(key.clone(), value.into_owned()).is_some() {
            return Err(format!("option {key:?} given twice"));
        }
    }
    Ok(StorageUrl::S3 {
        bucket,
        root,
        options,
    })
}

/// Field names of OpenDAL's `S3Config`, read from its serialised default so that the list follows
/// the OpenDAL version instead of being copied here.
fn s3_option_names() -> Vec<String> {
    match serde_json::to_value(opendal::services::S3Config::default()) {
        Ok(serde_json::Value::Object(map)) => map
            .keys()
            .filter(|k| *k != "bucket" && *k != "root")
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs_root(url: &str) -> PathBuf {
        match StorageUrl::parse(url).unwrap() {
            StorageUrl::Fs { root } => root,
            other => panic!("not fs: {other:?}"),
        }
    }

    #[test]
    fn fs_absolute_forms() {
        assert_eq!(
            fs_root("fs:///var/lib/hotwire"),
            PathBuf::from("/var/lib/hotwire")
        );
        assert_eq!(
            fs_root("fs:/var/lib/hotwire"),
            PathBuf::from("/var/lib/hotwire")
        );
        assert_eq!(fs_root("fs:///a/./b"), PathBuf::from("/a/b"));
    }

    #[test]
    fn fs_relative_forms_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(fs_root("fs://./data"), cwd.join("data"));
        assert_eq!(fs_root("fs://data/x"), cwd.join("data/x"));
        assert_eq!(fs_root("fs:data"), cwd.join("data"));
        assert!(fs_root("fs://./data").is_absolute());
    }

    #[test]
    fn s3_with_endpoint_and_region() {
        let url = "s3://my-bucket/hot/wire?endpoint=http://127.0.0.1:9000&region=us-east-1";
        let parsed = StorageUrl::parse(url).unwrap();
        let StorageUrl::S3 {
            bucket,
            root,
            options,
        } = &parsed
        else {
            panic!("not s3: {parsed:?}");
        };
        assert_eq!(bucket, "my-bucket");
        assert_eq!(root, "/hot/wire/");
        assert_eq!(options["endpoint"], "http://127.0.0.1:9000");
        assert_eq!(options["region"], "us-east-1");
        assert_eq!(parsed.display(), url.replace("/wire?", "/wire/?"));
    }

    #[test]
    fn s3_without_prefix_and_with_extra_options() {
        let parsed =
            StorageUrl::parse("s3://b?enable_virtual_host_style=true&secret_access_key=xyz")
                .unwrap();
        let StorageUrl::S3 { root, options, .. } = &parsed else {
            panic!("not s3");
        };
        assert_eq!(root, "/");
        assert_eq!(options["enable_virtual_host_style"], "true");
        assert!(!parsed.display().contains("xyz"), "{}", parsed.display());
    }

    #[test]
    fn other_services_map_to_opendal_configs() {
        let parsed = StorageUrl::parse("hdfs://nn:8020/hotwire/a").unwrap();
        let StorageUrl::Service {
            scheme, options, ..
        } = &parsed
        else {
            panic!("not a service: {parsed:?}");
        };
        assert_eq!(*scheme, "hdfs-native");
        assert_eq!(options["name_node"], "hdfs://nn:8020");
        assert_eq!(options["root"], "/hotwire/a/");
        let parsed =
            StorageUrl::parse("azblob://c/p?endpoint=http://x&account_key=secret").unwrap();
        assert!(!parsed.display().contains("secret"), "{}", parsed.display());
        let StorageUrl::Service { options, .. } = parsed else {
            panic!()
        };
        assert_eq!(options["container"], "c");
    }

    #[test]
    fn bad_urls_are_rejected_with_a_reason() {
        for (url, needle) in [
            ("/just/a/path", "missing scheme"),
            ("data", "missing scheme"),
            ("ftp://bucket", "unsupported scheme \"ftp\""),
            ("gcs://", "missing bucket"),
            ("gcs://b/p?root=x", "given twice"),
            ("fs://", "empty path"),
            ("fs:", "empty path"),
            ("fs:///data?sync=false", "no query"),
            ("s3://", "missing bucket"),
            ("s3://b/p?regoin=x", "unknown s3 option \"regoin\""),
            ("s3://b/p?region=a&region=b", "given twice"),
            ("s3://b/p?bucket=c", "url path"),
            ("s3://k:s@b/p", "credentials"),
            ("s3://b:9000/p", "port"),
        ] {
            let err = StorageUrl::parse(url).unwrap_err();
            assert!(matches!(err, StorageError::InvalidUrl(_)), "{url}: {err}");
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }
}
