use super::*;

fn binding(
    resource_type: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        resource_type,
        name: name.into(),
        pattern,
        principal: principal.into(),
        host: WILDCARD.into(),
        operation,
        permission,
    }
}

fn allow(name: &str, pattern: PatternType, principal: &str, operation: Operation) -> AclBinding {
    binding(
        ResourceType::Topic,
        name,
        pattern,
        principal,
        operation,
        Permission::Allow,
    )
}

fn deny(name: &str, pattern: PatternType, principal: &str, operation: Operation) -> AclBinding {
    binding(
        ResourceType::Topic,
        name,
        pattern,
        principal,
        operation,
        Permission::Deny,
    )
}

/// User:alice may do `operation` on the topic `name` (literal).
fn alice(name: &str, operation: Operation) -> AclBinding {
    allow(name, PatternType::Literal, "User:alice", operation)
}

/// User:alice may READ `name` (by `pattern`).
fn alice_reads(name: &str, pattern: PatternType) -> [AclBinding; 1] {
    [allow(name, pattern, "User:alice", Operation::Read)]
}

const ALICE: Requester = Requester {
    principal: "User:alice",
    host: "10.0.0.1",
};

fn may(bindings: &[AclBinding], operation: Operation, topic: &str) -> bool {
    authorize(
        bindings,
        &AuthorizerSettings::default(),
        ALICE,
        operation,
        ResourceType::Topic,
        topic,
    )
}

#[test]
fn with_no_acl_only_allow_everyone_if_no_acl_found_opens_a_resource() {
    assert!(!may(&[], Operation::Read, "orders"));
    let open = AuthorizerSettings {
        allow_everyone_if_no_acl_found: true,
        ..Default::default()
    };
    assert!(authorize(
        &[],
        &open,
        ALICE,
        Operation::Read,
        ResourceType::Topic,
        "orders"
    ));
    // An ACL for someone else applies to the resource: it is no longer "no ACL found".
    let bob = [allow(
        "orders",
        PatternType::Literal,
        "User:bob",
        Operation::Read,
    )];
    assert!(!authorize(
        &bob,
        &open,
        ALICE,
        Operation::Read,
        ResourceType::Topic,
        "orders"
    ));
}

#[test]
fn super_users_may_do_anything() {
    let settings = AuthorizerSettings {
        super_users: vec!["User:alice".into()],
        ..Default::default()
    };
    let denied = [deny(
        "orders",
        PatternType::Literal,
        "User:alice",
        Operation::All,
    )];
    assert!(authorize(
        &denied,
        &settings,
        ALICE,
        Operation::Write,
        ResourceType::Topic,
        "orders"
    ));
}

#[test]
fn literal_wildcard_and_prefixed_names_apply_as_kafka_matches_them() {
    let literal = alice_reads("orders", PatternType::Literal);
    assert!(may(&literal, Operation::Read, "orders"));
    assert!(!may(&literal, Operation::Read, "orders-eu"));
    let wildcard = alice_reads(WILDCARD, PatternType::Literal);
    assert!(may(&wildcard, Operation::Read, "anything"));
    let prefixed = alice_reads("orders-", PatternType::Prefixed);
    assert!(may(&prefixed, Operation::Read, "orders-eu"));
    assert!(!may(&prefixed, Operation::Read, "orders"));
    // A prefixed "*" is the name "*" as a prefix, not a wildcard.
    let star_prefix = alice_reads(WILDCARD, PatternType::Prefixed);
    assert!(!may(&star_prefix, Operation::Read, "orders"));
}

#[test]
fn other_types_principals_and_hosts_do_not_apply() {
    let group = [binding(
        ResourceType::Group,
        "orders",
        PatternType::Literal,
        "User:alice",
        Operation::Read,
        Permission::Allow,
    )];
    assert!(!may(&group, Operation::Read, "orders"));
    let bob = [allow(
        "orders",
        PatternType::Literal,
        "User:bob",
        Operation::Read,
    )];
    assert!(!may(&bob, Operation::Read, "orders"));
    let everyone = [allow(
        "orders",
        PatternType::Literal,
        ANY_USER,
        Operation::Read,
    )];
    assert!(may(&everyone, Operation::Read, "orders"));
    let mut elsewhere = alice("orders", Operation::Read);
    elsewhere.host = "10.0.0.2".into();
    assert!(!may(&[elsewhere.clone()], Operation::Read, "orders"));
    elsewhere.host = "10.0.0.1".into();
    assert!(may(&[elsewhere], Operation::Read, "orders"));
}

#[test]
fn read_write_delete_alter_imply_describe_and_alter_configs_implies_describe_configs() {
    for granted in [
        Operation::Read,
        Operation::Write,
        Operation::Delete,
        Operation::Alter,
    ] {
        let acl = [alice("t", granted)];
        assert!(may(&acl, Operation::Describe, "t"), "{granted:?}");
        assert!(!may(&acl, Operation::DescribeConfigs, "t"), "{granted:?}");
    }
    let acl = [alice("t", Operation::AlterConfigs)];
    assert!(may(&acl, Operation::DescribeConfigs, "t"));
    let acl = [alice("t", Operation::Describe)];
    assert!(!may(&acl, Operation::Read, "t"));
    let acl = [alice("t", Operation::All)];
    assert!(may(&acl, Operation::Write, "t") && may(&acl, Operation::AlterConfigs, "t"));
}

#[test]
fn a_matching_deny_wins_and_names_its_operation_or_all() {
    let acls = [
        allow("orders", PatternType::Prefixed, ANY_USER, Operation::All),
        deny(
            "orders-secret",
            PatternType::Literal,
            "User:alice",
            Operation::Read,
        ),
    ];
    assert!(!may(&acls, Operation::Read, "orders-secret"));
    // Denying READ does not deny DESCRIBE, which the ALLOW grants.
    assert!(may(&acls, Operation::Describe, "orders-secret"));
    assert!(may(&acls, Operation::Read, "orders-public"));
    let all = [
        alice("t", Operation::Read),
        deny(WILDCARD, PatternType::Literal, ANY_USER, Operation::All),
    ];
    assert!(!may(&all, Operation::Read, "t"));
}

#[test]
fn bindings_keep_filter_values_out() {
    let good = alice("t", Operation::Read);
    assert_eq!(good.validate(), Ok(()));
    let mut any_op = good.clone();
    any_op.operation = Operation::Any;
    assert!(matches!(
        any_op.validate(),
        Err(InvalidBinding::FilterOnly(_))
    ));
    let mut matching = good.clone();
    matching.pattern = PatternType::Match;
    assert!(matches!(
        matching.validate(),
        Err(InvalidBinding::FilterOnly(_))
    ));
    let mut nameless = good.clone();
    nameless.name.clear();
    assert_eq!(nameless.validate(), Err(InvalidBinding::EmptyName));
    let mut anonymous = good.clone();
    anonymous.principal = "alice".into();
    assert!(matches!(
        anonymous.validate(),
        Err(InvalidBinding::Principal(_))
    ));
    let mut cluster = good;
    cluster.resource_type = ResourceType::Cluster;
    assert!(matches!(
        cluster.validate(),
        Err(InvalidBinding::ClusterName(_))
    ));
    cluster.name = CLUSTER_NAME.into();
    assert_eq!(cluster.validate(), Ok(()));
}

fn filter(name: Option<&str>, pattern: PatternType) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::Any,
        name: name.map(Into::into),
        pattern,
        principal: None,
        host: None,
        operation: Operation::Any,
        permission: Permission::Any,
    }
}

#[test]
fn filters_select_by_pattern_as_describe_and_delete_acls_do() {
    let literal = alice("orders-eu", Operation::Read);
    let prefixed = allow(
        "orders-",
        PatternType::Prefixed,
        "User:alice",
        Operation::Read,
    );
    let wildcard = allow(
        WILDCARD,
        PatternType::Literal,
        "User:alice",
        Operation::Read,
    );
    let all = [literal.clone(), prefixed.clone(), wildcard.clone()];
    let selected = |f: &AclFilter| -> Vec<AclBinding> {
        all.iter().filter(|b| f.matches(b)).cloned().collect()
    };
    assert_eq!(selected(&filter(None, PatternType::Any)), all.to_vec());
    assert_eq!(
        selected(&filter(None, PatternType::Prefixed)),
        vec![prefixed.clone()]
    );
    assert_eq!(
        selected(&filter(Some("orders-eu"), PatternType::Literal)),
        vec![literal.clone()]
    );
    assert_eq!(
        selected(&filter(Some("orders-"), PatternType::Any)),
        vec![prefixed.clone()]
    );
    // MATCH: everything that applies to the name.
    assert_eq!(
        selected(&filter(Some("orders-eu"), PatternType::Match)),
        vec![literal, prefixed, wildcard]
    );
    let mut by_principal = filter(None, PatternType::Any);
    by_principal.principal = Some("User:bob".into());
    assert!(selected(&by_principal).is_empty());
    let mut by_type = filter(None, PatternType::Any);
    by_type.resource_type = ResourceType::Group;
    assert!(selected(&by_type).is_empty());
}

#[test]
fn kafka_codes_round_trip_and_unknown_codes_are_refused() {
    for code in 1..=14i8 {
        let op = Operation::try_from(code).unwrap();
        assert_eq!(i8::from(op), code);
    }
    for code in 1..=7i8 {
        assert_eq!(i8::from(ResourceType::try_from(code).unwrap()), code);
    }
    assert_eq!(
        Operation::try_from(0),
        Err(UnknownCode {
            what: "operation",
            code: 0
        })
    );
    assert!(PatternType::try_from(5).is_err());
    assert!(Permission::try_from(-1).is_err());
}
