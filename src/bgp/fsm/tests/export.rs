//! What a session announces: the attributes it gives a route, next hops, families, changes
//! and their grouping into UPDATEs, route refresh.

use super::*;

#[test]
fn established_session_announces_current_routes_with_our_path() {
    let mut f = Fsm::new(cfg());
    f.process(export(&f, routes(&["192.0.2.10/32"])));
    let out = establish(&mut f, peer_open(3));
    let Message::Update(u) = only_sent(&out) else {
        panic!("expected one UPDATE: {out:?}")
    };
    assert_eq!(u.nlri, [pfx("192.0.2.10/32")]);
    assert!(u.withdrawn.is_empty());
    let a = u.attributes.unwrap();
    assert_eq!(a.as_path, AsPath::sequence(vec![4_200_000_001]));
    assert_eq!(a.origin, Origin::Igp);
    assert_eq!(a.next_hop.ipv4, Some(LOCAL.parse().unwrap()));
    assert_eq!(a.local_pref, None, "LOCAL_PREF is for iBGP only");
    assert_eq!(a.med, None);
}

#[test]
fn service_attributes_are_sent_as_configured() {
    let attrs = RouteAttributes {
        communities: vec![Community(65001 << 16 | 100)],
        med: Some(50),
        local_pref: Some(300),
        as_path_prepend: 2,
        ..RouteAttributes::default()
    };
    let desired = [(pfx("192.0.2.10/32"), attrs.clone())].into();
    let f = established_with(cfg(), desired);
    let a = &f.rib_out()[&pfx("192.0.2.10/32")];
    assert_eq!(a.as_path, AsPath::sequence(vec![4_200_000_001; 3]));
    assert_eq!(a.med, Some(50));
    assert_eq!(a.communities, attrs.communities);
    assert_eq!(a.local_pref, None);
}

#[test]
fn ibgp_sends_an_empty_as_path_and_local_pref() {
    let c = FsmConfig {
        remote_asn: 4_200_000_001,
        ..cfg()
    };
    let mut with_pref = RouteAttributes {
        as_path_prepend: 3,
        ..RouteAttributes::default()
    };
    for (pref, expected) in [(None, 100), (Some(300), 300)] {
        with_pref.local_pref = pref;
        let mut f = Fsm::new(c.clone());
        f.process(export(
            &f,
            [(pfx("192.0.2.10/32"), with_pref.clone())].into(),
        ));
        connected(&mut f);
        let mut open = peer_open(3);
        open.asn = 4_200_000_001;
        f.process(recv(Message::Open(open)));
        f.process(recv(Message::Keepalive));
        let out = initial_routes(&mut f);
        let a = updates(&out)[0].attributes.clone().unwrap();
        assert!(a.as_path.0.is_empty());
        assert_eq!(a.local_pref, Some(expected));
    }
}

#[test]
fn ipv6_routes_get_an_ipv6_next_hop() {
    // Over IPv4 transport: the interface's global IPv6 address.
    let f = established(&["192.0.2.10/32", "2001:db8::10/128"]);
    let v6 = &f.rib_out()[&pfx("2001:db8::10/128")];
    assert_eq!(v6.next_hop.ipv6, Some("2001:db8:1::1".parse().unwrap()));
    assert_eq!(v6.next_hop.ipv6_link_local, None);
    assert_eq!(v6.next_hop.ipv4, None);

    // Over a link-local IPv6 session: global plus link-local, and IPv4 from the interface.
    let mut f = Fsm::new(cfg());
    f.process(export(&f, routes(&["192.0.2.10/32", "2001:db8::10/128"])));
    connected_with(&mut f, "fe80::1");
    f.process(recv(Message::Open(peer_open(3))));
    f.process(recv(Message::Keepalive));
    initial_routes(&mut f);
    let v6 = &f.rib_out()[&pfx("2001:db8::10/128")];
    assert_eq!(v6.next_hop.ipv6, Some("2001:db8:1::1".parse().unwrap()));
    assert_eq!(
        v6.next_hop.ipv6_link_local,
        Some("fe80::1".parse().unwrap())
    );
    let v4 = &f.rib_out()[&pfx("192.0.2.10/32")];
    assert_eq!(v4.next_hop.ipv4, Some(LOCAL.parse().unwrap()));
}

#[test]
fn next_hop_overrides_win_service_over_peer_over_session() {
    let c = FsmConfig {
        next_hop_ipv4: Some("198.18.7.7".parse().unwrap()),
        ..cfg()
    };
    let f = established_with(c.clone(), routes(&["192.0.2.10/32"]));
    let nh = f.rib_out()[&pfx("192.0.2.10/32")].next_hop.ipv4;
    assert_eq!(nh, Some("198.18.7.7".parse().unwrap()));
    let attrs = RouteAttributes {
        next_hop_ipv4: Some("198.18.8.8".parse().unwrap()),
        ..RouteAttributes::default()
    };
    let f = established_with(c, [(pfx("192.0.2.10/32"), attrs)].into());
    let nh = f.rib_out()[&pfx("192.0.2.10/32")].next_hop.ipv4;
    assert_eq!(nh, Some("198.18.8.8".parse().unwrap()));
}

#[test]
fn a_family_the_peer_did_not_accept_is_not_sent() {
    let mut f = Fsm::new(cfg());
    f.process(export(&f, routes(&["192.0.2.10/32", "2001:db8::10/128"])));
    connected(&mut f);
    let mut open = peer_open(3);
    open.capabilities.multiprotocol = vec![(AFI_IPV4, SAFI_UNICAST)];
    f.process(recv(Message::Open(open)));
    f.process(recv(Message::Keepalive));
    let out = initial_routes(&mut f);
    let u = updates(&out);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].nlri, [pfx("192.0.2.10/32")]);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Warn(w) if w.to_string().contains("2001:db8::10/128"))));
}

#[test]
fn nothing_is_announced_without_desired_routes() {
    let mut f = Fsm::new(cfg());
    let out = establish(&mut f, peer_open(3));
    assert!(sent(&out).is_empty());
}

#[test]
fn route_changes_become_announce_and_withdraw() {
    let mut f = established(&["192.0.2.10/32"]);
    let out = f.process(export(&f, DesiredRoutes::new()));
    let Message::Update(u) = only_sent(&out) else {
        panic!("{out:?}")
    };
    assert_eq!(u.withdrawn, [pfx("192.0.2.10/32")]);
    assert!(u.nlri.is_empty() && u.attributes.is_none());
    assert!(f.rib_out().is_empty());
    // The same desired set again sends nothing.
    assert!(sent(&f.process(export(&f, DesiredRoutes::new()))).is_empty());
    let out = f.process(export(&f, routes(&["192.0.2.10/32"])));
    let Message::Update(u) = only_sent(&out) else {
        panic!("{out:?}")
    };
    assert_eq!(u.nlri, [pfx("192.0.2.10/32")]);
}

#[test]
fn changed_attributes_are_re_announced_and_groups_share_an_update() {
    let mut f = established(&["192.0.2.10/32", "192.0.2.11/32"]);
    let mut desired = routes(&["192.0.2.10/32", "192.0.2.11/32", "192.0.2.12/32"]);
    desired.get_mut(&pfx("192.0.2.11/32")).unwrap().med = Some(5);
    let out = f.process(export(&f, desired));
    let u = updates(&out);
    assert_eq!(u.len(), 2, "{u:?}");
    let nlri: Vec<_> = u.iter().map(|u| u.nlri.clone()).collect();
    assert!(nlri.contains(&vec![pfx("192.0.2.11/32")]));
    assert!(nlri.contains(&vec![pfx("192.0.2.12/32")]));
}

#[test]
fn route_changes_before_established_are_remembered_not_sent() {
    let mut f = Fsm::new(cfg());
    connected(&mut f);
    let out = f.process(export(&f, routes(&["192.0.2.10/32"])));
    assert!(sent(&out).is_empty());
    f.process(recv(Message::Open(peer_open(3))));
    f.process(recv(Message::Keepalive));
    let out = initial_routes(&mut f);
    assert_eq!(sent(&out).len(), 1);
}

#[test]
fn route_refresh_resends_the_family_from_the_rib_out() {
    let mut f = established(&["192.0.2.10/32", "2001:db8::10/128"]);
    let out = f.process(recv(Message::RouteRefresh { afi: 1, safi: 1 }));
    let u = updates(&out);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].nlri, [pfx("192.0.2.10/32")]);
    assert!(u[0].withdrawn.is_empty());
    let out = f.process(recv(Message::RouteRefresh { afi: 2, safi: 1 }));
    assert_eq!(updates(&out)[0].nlri, [pfx("2001:db8::10/128")]);
    let out = f.process(recv(Message::RouteRefresh { afi: 1, safi: 128 }));
    assert!(sent(&out).is_empty());
    assert_eq!(f.counters().route_refresh_in, 3);
    assert_eq!(f.state(), State::Established);
}

/// An Export of `desired` with `held` prefixes, released for the session `f` is in.
fn export_held(f: &Fsm, desired: DesiredRoutes, held: &[&str]) -> Input {
    let Input::Routes(mut e) = export(f, desired) else {
        unreachable!()
    };
    e.held = std::sync::Arc::new(held.iter().map(|p| pfx(p)).collect());
    Input::Routes(e)
}

#[test]
fn a_held_route_stays_where_advertised_and_is_announced_nowhere_else() {
    // The rules withdrew the service while its refusal is being installed: the route is held
    // on the session that advertised it (unchanged, even if its attributes would change)...
    let mut f = established(&["192.0.2.10/32", "192.0.2.20/32"]);
    let before = f.rib_out()[&pfx("192.0.2.10/32")].clone();
    let mut changed = routes(&["192.0.2.10/32", "192.0.2.20/32"]);
    changed.get_mut(&pfx("192.0.2.10/32")).unwrap().med = Some(7);
    let input = export_held(&f, changed, &["192.0.2.10/32"]);
    assert!(updates(&f.process(input)).is_empty());
    assert_eq!(f.rib_out()[&pfx("192.0.2.10/32")], before);
    // ...and withdrawn once the hold ends with the route no longer desired.
    let input = export(&f, routes(&["192.0.2.20/32"]));
    let u = updates(&f.process(input));
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].withdrawn, [pfx("192.0.2.10/32")]);
    // A session that comes up during the hold never announces the held route: the old
    // primary's session that returns after an isolation must not put it back beside the new.
    let mut f = Fsm::new(cfg());
    let input = export_held(
        &f,
        routes(&["192.0.2.10/32", "192.0.2.20/32"]),
        &["192.0.2.10/32"],
    );
    f.process(input);
    let out = establish(&mut f, peer_open(3));
    let announced: Vec<IpNetwork> = updates(&out).into_iter().flat_map(|u| u.nlri).collect();
    assert_eq!(announced, [pfx("192.0.2.20/32")]);
    assert!(!f.rib_out().contains_key(&pfx("192.0.2.10/32")));
}
