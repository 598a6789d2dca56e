//! Criterion benchmark of the oslo v2 envelope: encode and decode of a notification
//! with a ~200-byte payload, against plain `serde_json` of the same payload as a baseline.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use messaging_core::envelope;
use messaging_core::{Context, Notifier, Priority};

fn payload() -> serde_json::Value {
    serde_json::json!({
        "instance_id": "6f1c2a8e-0000-4000-8000-00000000abcd",
        "tenant_id": "b1c2d3e4f5",
        "state": "active",
        "flavor": {"name": "m1.small", "vcpus": 1, "ram_mb": 2048},
        "tags": ["web", "prod", "eu-west"]
    })
}

fn bench(c: &mut Criterion) {
    let notifier = Notifier::builder()
        .publisher_id("compute.host1")
        .build()
        .unwrap();
    let p = payload();
    let n = notifier
        .build_notification(
            Priority::Info,
            &Context::new(),
            "compute.instance.update",
            &p,
        )
        .unwrap();
    let encoded = envelope::encode(&n).unwrap();
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_serde_json_payload_to_vec", |b| {
        b.iter(|| serde_json::to_vec(&p).unwrap())
    });
    g.bench_function("build_and_encode", |b| {
        b.iter(|| {
            let n = notifier
                .build_notification(
                    Priority::Info,
                    &Context::new(),
                    "compute.instance.update",
                    &p,
                )
                .unwrap();
            envelope::encode(&n).unwrap()
        })
    });
    g.bench_function("encode", |b| b.iter(|| envelope::encode(&n).unwrap()));
    g.bench_function("baseline_serde_json_payload_from_slice", |b| {
        let raw = serde_json::to_vec(&p).unwrap();
        b.iter(|| serde_json::from_slice::<serde_json::Value>(&raw).unwrap())
    });
    g.bench_function("decode", |b| b.iter(|| envelope::decode(&encoded).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
