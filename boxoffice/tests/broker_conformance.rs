//! What boxoffice relies on from its Kafka-protocol broker, checked against
//! the real one. A broker swap or upgrade that breaks an assumption fails
//! here, loudly, instead of in a sale.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const LOCAL_BROKER: &str = "127.0.0.1:9092";

fn config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

async fn create_topic(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().unwrap();
    let r = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    r[0].as_ref().unwrap();
}

fn producer(brokers: &str) -> FutureProducer {
    config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap()
}

fn consumer(brokers: &str, group: &str) -> BaseConsumer {
    config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap()
}

/// Polls until `done` says so or 60 s pass; returns every message as
/// (partition, offset, key, payload).
fn drain(
    c: &BaseConsumer,
    mut done: impl FnMut(&[(i32, i64, String, String)]) -> bool,
) -> Vec<(i32, i64, String, String)> {
    let mut got = vec![];
    let started = Instant::now();
    while !done(&got) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out with {} messages",
            got.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    got
}

async fn produce(p: &FutureProducer, topic: &str, n: usize, keys: usize) {
    let records: Vec<(String, String)> = (0..n)
        .map(|i| (format!("key-{}", i % keys), format!("{i}")))
        .collect();
    let sends = records.iter().map(|(k, v)| {
        p.send(
            FutureRecord::to(topic).key(k).payload(v),
            Duration::from_secs(5),
        )
    });
    for r in futures::future::join_all(sends).await {
        r.map_err(|(e, _)| e).unwrap();
    }
}

fn topic(name: &str) -> String {
    format!("conformance-{name}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_records_keep_their_partition_order_and_contiguous_offsets() {
    let t = topic("keys");
    create_topic(LOCAL_BROKER, &t, 4).await;
    produce(&producer(LOCAL_BROKER), &t, 400, 16).await;
    let c = consumer(LOCAL_BROKER, &t);
    c.subscribe(&[&t]).unwrap();
    let got = drain(&c, |g| g.len() >= 400);
    assert_eq!(
        got.len(),
        400,
        "no record lost or duplicated by the idempotent producer"
    );
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut last_value: HashMap<String, i64> = HashMap::new();
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o, k, v) in &got {
        assert_eq!(
            *partition_of.entry(k.clone()).or_insert(*p),
            *p,
            "key {k} stays on one partition"
        );
        let v: i64 = v.parse().unwrap();
        assert!(
            last_value.insert(k.clone(), v).is_none_or(|prev| prev < v),
            "key {k} keeps its order"
        );
        offsets.entry(*p).or_default().push(*o);
    }
    assert!(offsets.len() > 1, "16 keys spread over partitions");
    for (p, os) in offsets {
        let expected: Vec<i64> = (0..os.len() as i64).collect();
        assert_eq!(os, expected, "partition {p} offsets are contiguous from 0");
    }
}

fn assignment(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// Polls both consumers until `check` holds on their assignments.
fn wait_assign(cs: &[&BaseConsumer], check: impl Fn(&[BTreeSet<i32>]) -> bool) {
    let started = Instant::now();
    loop {
        for c in cs {
            let _ = c.poll(Duration::from_millis(100));
        }
        let a: Vec<_> = cs.iter().map(|c| assignment(c)).collect();
        if check(&a) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "assignments never settled: {a:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_rebalances_and_resumes_at_committed_offsets() {
    let t = topic("group");
    create_topic(LOCAL_BROKER, &t, 6).await;
    let a = consumer(LOCAL_BROKER, &t);
    a.subscribe(&[&t]).unwrap();
    wait_assign(&[&a], |x| x[0].len() == 6);
    let b = consumer(LOCAL_BROKER, &t);
    b.subscribe(&[&t]).unwrap();
    wait_assign(&[&a, &b], |x| {
        x[0].len() == 3 && x[1].len() == 3 && x[0].is_disjoint(&x[1])
    });
    drop(b);
    wait_assign(&[&a], |x| x[0].len() == 6);

    produce(&producer(LOCAL_BROKER), &t, 60, 60).await;
    let first = drain(&a, |g| g.len() >= 30);
    a.commit_consumer_state(CommitMode::Sync).unwrap();
    let consumed: BTreeSet<(i32, i64)> = first.iter().map(|(p, o, _, _)| (*p, *o)).collect();
    drop(a);

    let c = consumer(LOCAL_BROKER, &t);
    c.subscribe(&[&t]).unwrap();
    let rest = drain(&c, |g| first.len() + g.len() >= 60);
    assert_eq!(
        first.len() + rest.len(),
        60,
        "nothing re-read, nothing skipped"
    );
    for (p, o, _, _) in &rest {
        assert!(
            !consumed.contains(&(*p, *o)),
            "committed record {p}/{o} delivered again"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_and_committed_offsets_survive_a_broker_crash() {
    let dir = std::env::temp_dir().join(format!(
        "boxoffice-broker-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut broker = support::Broker::start(dir).await;
    let brokers = broker.address();
    let t = topic("crash");
    create_topic(&brokers, &t, 2).await;
    produce(&producer(&brokers), &t, 100, 100).await;
    let group = format!("{t}-group");
    {
        let c = consumer(&brokers, &group);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&t, 0, Offset::Offset(10)).unwrap();
        tpl.add_partition_offset(&t, 1, Offset::Offset(5)).unwrap();
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    broker.kill();
    broker.restart().await;

    let all = consumer(&brokers, &format!("{t}-fresh"));
    all.subscribe(&[&t]).unwrap();
    let everything = drain(&all, |g| g.len() >= 100);
    assert_eq!(everything.len(), 100, "every acknowledged record survived");

    let c = consumer(&brokers, &group);
    let committed = c
        .committed_offsets(
            {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&t, 0);
                tpl.add_partition(&t, 1);
                tpl
            },
            Duration::from_secs(10),
        )
        .unwrap();
    let offsets: BTreeMap<i32, Offset> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(offsets[&0], Offset::Offset(10));
    assert_eq!(offsets[&1], Offset::Offset(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_member_resumes_right_after_the_last_message_marked_processed() {
    // The processors mark each message processed after its batch is durable;
    // a restart or rebalance must resume with the very next one: not one
    // later (a lost command), not earlier than the last commit.
    let t = topic("resume");
    create_topic(LOCAL_BROKER, &t, 1).await;
    produce(&producer(LOCAL_BROKER), &t, 20, 1).await;
    let group = format!("{t}-group");
    {
        // Configured as the processors' consumers are: offsets stored by hand.
        let a: BaseConsumer = config(LOCAL_BROKER)
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        a.subscribe(&[&t]).unwrap();
        let mut marked = 0;
        let started = Instant::now();
        while marked < 7 {
            assert!(started.elapsed() < Duration::from_secs(60), "no messages");
            if let Some(m) = a.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                boxoffice_platform::kafka::mark_processed(&a, &m).unwrap();
                marked += 1;
            }
        }
        a.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    let b = consumer(LOCAL_BROKER, &group);
    b.subscribe(&[&t]).unwrap();
    let next = drain(&b, |g| !g.is_empty());
    assert_eq!(
        next[0].1, 7,
        "resumed at offset {} after marking 0..=6",
        next[0].1
    );
}
