//! Opening stores from URLs.

use dfs_adapter::{StorageError, Store};

#[tokio::test]
async fn fs_creates_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nested/deeper");
    let store = Store::open(&format!("fs:{}", root.display()))
        .await
        .unwrap();
    assert!(root.join("wal").is_dir());
    assert!(root.join("topics").is_dir());
    assert_eq!(store.url(), format!("fs://{}", root.display()));
    // Opening again is fine.
    Store::open(&format!("fs://{}", root.display()))
        .await
        .unwrap();
}

#[tokio::test]
async fn fs_root_that_is_a_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&format!("fs://{}", file.display()))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err}");
}

#[tokio::test]
async fn s3_opens_without_contacting_the_server() {
    let url = "s3://bucket/some/prefix?endpoint=http://127.0.0.1:1&region=us-east-1\
               &secret_access_key=hunter2&access_key_id=AKIA";
    let store = Store::open(url).await.unwrap();
    assert!(store.url().starts_with("s3://bucket/some/prefix/?"));
    assert!(!store.url().contains("hunter2"));
}

#[tokio::test]
async fn unknown_scheme_is_invalid() {
    for url in ["hdfs://nn/path", "memory://", "nonsense"] {
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidUrl(_)), "{url}: {err}");
        assert!(!err.is_retryable());
    }
}
