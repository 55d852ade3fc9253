use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::*;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn memory(bytes: usize) -> RequestMemory {
    RequestMemory::new(bytes, Counter::default())
}

#[tokio::test]
async fn frames_come_whole_however_their_bytes_arrive() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut reader = FrameReader::new(server, 1024, memory(4096));
    let mut sent = frame(b"first");
    sent.extend(frame(b""));
    sent.extend(frame(b"third one"));
    let writer = tokio::spawn(async move {
        for piece in sent.chunks(3) {
            client.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        client
    });
    for expected in [&b"first"[..], b"", b"third one"] {
        let (bytes, _permit) = reader.next().await.unwrap().unwrap();
        assert_eq!(&bytes[..], expected);
    }
    drop(writer.await.unwrap());
    assert!(reader.next().await.unwrap().is_none(), "a clean end");
}

#[tokio::test]
async fn random_frames_in_random_pieces_come_back_whole_and_in_order() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for _trial in 0..50 {
        let frames: Vec<Vec<u8>> = (0..next(20) + 1)
            .map(|i| vec![i as u8; next(3000) as usize])
            .collect();
        let mut sent: Vec<u8> = frames.iter().flat_map(|f| frame(f)).collect();
        let (mut client, server) = tokio::io::duplex(1 + next(4096) as usize);
        // A budget of two of the largest frames: frames wait for each other's memory too.
        let mut reader = FrameReader::new(server, 3000, memory(6000));
        let mut pieces = Vec::new();
        while !sent.is_empty() {
            let n = (1 + next(700) as usize).min(sent.len());
            pieces.push(sent.drain(..n).collect::<Vec<u8>>());
        }
        let writer = tokio::spawn(async move {
            for piece in pieces {
                client.write_all(&piece).await.unwrap();
            }
        });
        for expected in &frames {
            let (bytes, _permit) = reader.next().await.unwrap().unwrap();
            assert_eq!(&bytes[..], &expected[..]);
        }
        writer.await.unwrap();
        assert!(reader.next().await.unwrap().is_none());
        assert_eq!(reader.memory.available(), 6000, "every permit came back");
    }
}

#[tokio::test]
async fn a_frame_cut_short_or_too_large_is_an_error() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut reader = FrameReader::new(server, 16, memory(4096));
    client
        .write_all(&frame(b"0123456789abcdefXYZ"))
        .await
        .unwrap();
    assert!(matches!(reader.next().await, Err(FrameError::TooLarge(19))));

    let (mut client, server) = tokio::io::duplex(64);
    let mut reader = FrameReader::new(server, 16, memory(4096));
    client.write_all(&frame(b"0123456789")[..8]).await.unwrap();
    drop(client);
    assert!(matches!(reader.next().await, Err(FrameError::Io(_))));
}

#[tokio::test]
async fn a_frame_is_read_only_once_its_memory_is_free_and_holds_it_until_dropped() {
    let budget = memory(12);
    let (mut a, a_server) = tokio::io::duplex(64);
    let (mut b, b_server) = tokio::io::duplex(64);
    let mut a_reader = FrameReader::new(a_server, 12, budget.clone());
    let mut b_reader = FrameReader::new(b_server, 12, budget.clone());
    a.write_all(&frame(b"aaaaaaaa")).await.unwrap();
    b.write_all(&frame(b"bbbbbbbb")).await.unwrap();
    let (first, permit) = a_reader.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"aaaaaaaa");
    assert_eq!(budget.available(), 4);
    // 8 more bytes do not fit: b's body stays in its stream, unread.
    let waited = tokio::time::timeout(Duration::from_millis(100), b_reader.next()).await;
    assert!(waited.is_err(), "b was read beyond the budget");
    assert_eq!(b_reader.buffered(), 4, "only b's length prefix was read");
    assert_eq!(budget.waits.get(), 1);
    drop(permit);
    let (second, _permit) = b_reader.next().await.unwrap().unwrap();
    assert_eq!(
        &second[..],
        b"bbbbbbbb",
        "the cancelled call's progress was kept"
    );
    assert_eq!(budget.available(), 4);
}
