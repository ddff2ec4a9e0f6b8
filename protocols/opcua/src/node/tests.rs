#![allow(clippy::unwrap_used)]

use super::*;
use opcua::types::Identifier;
use proptest::prelude::*;

#[test]
fn accepted_forms() {
    let table: &[(&str, Namespace, &str)] = &[
        (
            "ns=2;s=IMM1.CycleTime",
            Namespace::Index(2),
            "s=IMM1.CycleTime",
        ),
        ("ns=2;i=1001", Namespace::Index(2), "i=1001"),
        ("i=2258", Namespace::Index(0), "i=2258"),
        ("ns=1;s=a;b", Namespace::Index(1), "s=a;b"),
        (
            "nsu=urn:vendor:imm;s=CycleTime",
            Namespace::Uri("urn:vendor:imm".into()),
            "s=CycleTime",
        ),
        (
            "nsu=http://x.org/UA/;i=5",
            Namespace::Uri("http://x.org/UA/".into()),
            "i=5",
        ),
        (
            "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            Namespace::Index(3),
            "g=09087e75-8e5e-499b-954f-f2a9603db28a",
        ),
        (
            "ns=4;b=M/RbKBsRVkePCePcx24oRA==",
            Namespace::Index(4),
            "b=M/RbKBsRVkePCePcx24oRA==",
        ),
    ];
    for (text, ns, id) in table {
        let n = NodeRef::parse(text).unwrap();
        assert_eq!(&n.namespace, ns, "{text}");
        assert_eq!(n.identifier, *id, "{text}");
        assert_eq!(n.to_string(), *text);
    }
}

#[test]
fn refused_forms() {
    for text in [
        "",
        "ns=2",
        "ns=x;s=a",
        "ns=70000;i=1",
        "ns=2;s=",
        "ns=2;i=-1",
        "ns=2;i=abc",
        "s=",
        "nsu=;s=a",
        "nsu=urn:x",
        "ns=2;q=1",
        "ns=2;g=not-a-guid",
        "CycleTime",
    ] {
        assert!(NodeRef::parse(text).is_err(), "{text:?} was accepted");
    }
}

#[test]
fn a_uri_resolves_to_its_index_on_each_server() {
    let n = NodeRef::parse("nsu=urn:vendor:imm;s=CycleTime").unwrap();
    let today = [
        "http://opcfoundation.org/UA/".to_owned(),
        "urn:a".into(),
        "urn:vendor:imm".into(),
    ];
    let id = n.resolve(&today).unwrap();
    assert_eq!(id.namespace, 2);
    assert_eq!(id.identifier, Identifier::String("CycleTime".into()));
    let after_restart = [today[0].clone(), today[2].clone()];
    assert_eq!(n.resolve(&after_restart).unwrap().namespace, 1);
    assert_eq!(
        n.resolve(&today[..2]),
        Err(NodeError::UnknownNamespace("urn:vendor:imm".into()))
    );
}

#[test]
fn numeric_ids_resolve_numeric() {
    let id = NodeRef::parse("ns=2;i=1001").unwrap().resolve(&[]).unwrap();
    assert_eq!(
        (id.namespace, id.identifier),
        (2, Identifier::Numeric(1001))
    );
}

proptest! {
    #[test]
    fn string_ids_round_trip(ns in 0u16.., name in "[^\u{0}]{1,40}") {
        let text = format!("ns={ns};s={name}");
        let n = NodeRef::parse(&text).unwrap();
        prop_assert_eq!(n.to_string(), if ns == 0 { format!("s={name}") } else { text.clone() });
        let id = n.resolve(&[]).unwrap();
        prop_assert_eq!(id.namespace, ns);
        prop_assert_eq!(id.identifier, Identifier::String(name.as_str().into()));
    }

    #[test]
    fn no_text_panics_the_parser(text in ".{0,60}") {
        let _ = NodeRef::parse(&text);
    }
}
