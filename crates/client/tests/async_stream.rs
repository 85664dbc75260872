//! The async API from tokio, against the real driver under fltsim: a Stream of events
//! whose requests are answered with reply futures.

// Linux only: fltsim and the sim host do not exist on Windows (compiles to nothing there).
#![cfg(not(windows))]
#![cfg(feature = "async")]

mod common;

use common::{STATUS_ACCESS_DENIED, STATUS_SUCCESS, Sim, configure, connect, create};
use portfilter_client::stream::{EventStream, StreamItem};
use portfilter_client::{EngineOptions, ReplyOutcome, Role, Verdict};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

#[test]
fn stream_yields_requests_and_reply_futures_decide_them() {
    let _sim = Sim::boot();
    configure(|c| c.reply_timeout_ms = 20_000);
    let decider = Arc::new(connect(Role::Decider));
    let mut stream = EventStream::start(
        decider,
        EngineOptions {
            requests: 4,
            workers: 2,
        },
        16,
    )
    .unwrap();
    let creators = thread::spawn(|| {
        let names = ["a.txt", "b.tmp", "c.txt", "d.tmp", "e.tmp"];
        names.map(|name| (name, create(&format!(r"C:\async\{name}"))))
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let answered = runtime.block_on(async {
        let mut answered = 0;
        while answered < 5 {
            let item = tokio::time::timeout(Duration::from_secs(30), stream.next_item())
                .await
                .expect("an event in time")
                .expect("stream open");
            let StreamItem::Event(delivery) = item else {
                panic!("no drops in request-reply");
            };
            assert!(delivery.is_request());
            let verdict = if delivery.event.name.ends_with(".tmp") {
                Verdict::Deny
            } else {
                Verdict::Allow
            };
            assert_eq!(
                delivery.reply(verdict).await.unwrap(),
                ReplyOutcome::Delivered
            );
            answered += 1;
        }
        answered
    });
    assert_eq!(answered, 5);
    for (name, status) in creators.join().unwrap() {
        let expected = if name.ends_with(".tmp") {
            STATUS_ACCESS_DENIED
        } else {
            STATUS_SUCCESS
        };
        assert_eq!(status, expected, "{name}");
    }
    let stats = stream.stats();
    assert_eq!((stats.allowed, stats.denied), (2, 3));
}

#[test]
fn stream_ends_when_the_driver_unloads() {
    let _sim = Sim::boot();
    let observer = Arc::new(connect(Role::Observer));
    let mut stream = EventStream::start(observer, EngineOptions::default(), 4).unwrap();
    fltsim::unload_driver().expect("unload");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let end = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), stream.next_item()).await
    });
    assert!(matches!(end, Ok(None)), "the stream ended: {end:?}");
}

#[test]
fn stream_implements_futures_stream() {
    fn assert_stream<S: futures_core::Stream<Item = StreamItem>>(_: &S) {}
    let _sim = Sim::boot();
    let observer = Arc::new(connect(Role::Observer));
    let stream = EventStream::start(observer, EngineOptions::default(), 4).unwrap();
    assert_stream(&stream);
    stream.stopper().stop();
}

#[test]
fn an_observer_stream_yields_notifications_and_what_the_queue_dropped() {
    let _sim = Sim::boot();
    configure(|c| {
        c.observer_delivery = portfilter_client::protocol::Delivery::Queued;
        c.queue_capacity = 2;
        c.batch_max_events = 1;
    });
    let observer = Arc::new(connect(Role::Observer));
    // Creates before anyone receives: the queue keeps about 2 and drops the rest.
    for i in 0..6 {
        assert_eq!(create(&format!(r"C:\queued\{i}.txt")), STATUS_SUCCESS);
    }
    let mut stream = EventStream::start(observer, EngineOptions::default(), 16).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (events, dropped) = runtime.block_on(async {
        let (mut events, mut dropped) = (0, 0);
        while events + dropped < 6 {
            let item = tokio::time::timeout(Duration::from_secs(30), stream.next_item())
                .await
                .expect("an item in time")
                .expect("stream open");
            match item {
                StreamItem::Event(delivery) => {
                    assert!(!delivery.is_request(), "a notification expects no verdict");
                    events += 1;
                }
                StreamItem::Dropped(n) => dropped += n,
            }
        }
        (events, dropped)
    });
    // The queue keeps at least its capacity (a batch the driver is already building
    // may keep one more); every create is either an event or counted as dropped.
    assert!(
        events >= 2 && dropped >= 1,
        "{events} events, {dropped} dropped"
    );
    assert_eq!(events + dropped, 6);
    stream.stopper().stop();
}

#[test]
fn as_a_futures_stream_it_yields_the_events_too() {
    use futures_core::Stream;
    use std::pin::Pin;
    let _sim = Sim::boot();
    configure(common::notify_mode);
    let observer = Arc::new(connect(Role::Observer));
    let mut stream = EventStream::start(observer, EngineOptions::default(), 4).unwrap();
    assert_eq!(format!("{stream:?}"), "EventStream { .. }");
    assert_eq!(create(r"C:\polled\a.txt"), STATUS_SUCCESS);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let item = runtime.block_on(async {
        let next = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx));
        tokio::time::timeout(Duration::from_secs(30), next).await
    });
    let Ok(Some(StreamItem::Event(delivery))) = item else {
        panic!("an event: {item:?}")
    };
    assert!(
        delivery.event.name.ends_with(r"\polled\a.txt"),
        "{delivery:?}"
    );
    stream.stopper().stop();
}
