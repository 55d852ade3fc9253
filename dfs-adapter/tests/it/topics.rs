//! The topic catalog.

use std::collections::BTreeMap;

use dfs_adapter::{StorageError, Store, TopicRecord};

use crate::common::*;

fn topic(name: &str, partitions: i32) -> TopicRecord {
    TopicRecord {
        name: name.to_string(),
        id: uuid::Uuid::new_v4(),
        partitions,
        configs: BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]),
    }
}

#[tokio::test]
async fn put_list_replace_delete() {
    let (dir, store) = temp_store().await;
    assert!(store.list_topics().await.unwrap().is_empty());

    let orders = topic("orders", 3);
    let mut audit = topic("audit.log", 1);
    store.put_topic(&orders).await.unwrap();
    store.put_topic(&audit).await.unwrap();
    assert_eq!(
        store.list_topics().await.unwrap(),
        vec![audit.clone(), orders.clone()]
    );

    audit.partitions = 6;
    store.put_topic(&audit).await.unwrap();
    // A fresh open sees the replaced record.
    let reopened = Store::open(&format!("fs://{}", dir.path().display()))
        .await
        .unwrap();
    assert_eq!(
        reopened.list_topics().await.unwrap(),
        vec![audit, orders.clone()]
    );

    store.delete_topic("audit.log").await.unwrap();
    store.delete_topic("audit.log").await.unwrap(); // absent: still fine
    assert_eq!(store.list_topics().await.unwrap(), vec![orders]);
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("topics"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["orders.json"]);
}

#[tokio::test]
async fn corrupt_record_is_an_error_naming_the_object() {
    let (dir, store) = temp_store().await;
    store.put_topic(&topic("good", 1)).await.unwrap();
    std::fs::write(dir.path().join("topics/bad.json"), b"{\"name\": \"bad\", ").unwrap();
    match store.list_topics().await {
        Err(StorageError::Corrupt { object, .. }) => assert_eq!(object, "topics/bad.json"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn record_under_the_wrong_name_is_corrupt() {
    let (dir, store) = temp_store().await;
    store.put_topic(&topic("a", 1)).await.unwrap();
    std::fs::copy(
        dir.path().join("topics/a.json"),
        dir.path().join("topics/b.json"),
    )
    .unwrap();
    assert!(matches!(
        store.list_topics().await,
        Err(StorageError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn leftover_temp_files_and_strays_are_ignored() {
    let (dir, store) = temp_store().await;
    let t = topic("t", 2);
    store.put_topic(&t).await.unwrap();
    std::fs::write(dir.path().join("topics/t.json.tmp"), b"half").unwrap();
    std::fs::write(dir.path().join("topics/notes.txt"), b"x").unwrap();
    assert_eq!(store.list_topics().await.unwrap(), vec![t]);
}

#[tokio::test]
async fn unsafe_names_are_rejected() {
    let (_dir, store) = temp_store().await;
    for name in ["", "..", "../escape", "a/b"] {
        let err = store.put_topic(&topic(name, 1)).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidArgument(_)),
            "{name:?}: {err}"
        );
        assert!(store.delete_topic(name).await.is_err());
    }
}
