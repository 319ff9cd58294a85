//! Round trip of `lb-daemon convert`: one keepalived.conf drives keepalived 2.2.7 on one
//! node and `lb-daemon run` (converting it in memory) on the other, in one virtual router:
//! election, failover and preemption behave as between two keepalived. Needs root and
//! keepalived (VRRP only: this kernel has no IPVS).

use std::time::Duration;

use lb_tests::vrrp_lab::Segment;

const VIP: &str = "198.18.0.100";

/// The one file both nodes read. `@n2` lines are for lb-daemon (run with `--config-id
/// n2`), `@^n2` lines for keepalived (whose config id is the host name): n1 gets
/// priority 150, n2 100, and only lb-daemon sees its own control socket.
fn keepalived_conf(n2_dir: &std::path::Path) -> String {
    format!(
        r#"! One configuration for both routers.
@n2 $ROUTER=n2
@^n2 $ROUTER=n1
global_defs {{
    router_id $ROUTER
    vrrp_garp_master_delay 1
@n2 control_socket {dir}/lb.sock
}}
vrrp_script chk_true {{
    script "/bin/true"
    interval 1
    weight 2
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
@^n2 priority 150
@n2 priority 100
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass s3cret
    }}
    track_script {{
        chk_true
    }}
    virtual_ipaddress {{
        198.18.0.100/24 dev eth0
    }}
}}
"#,
        dir = n2_dir.display()
    )
}

#[test]
fn the_same_keepalived_conf_elects_fails_over_and_preempts_beside_keepalived() {
    let mut seg = Segment::new(2).expect("segment");
    let conf = keepalived_conf(seg.nodes[1].dir());
    seg.nodes[1]
        .start_ours_keepalived(&conf, "n2")
        .expect("start lb-daemon on n2");
    // Alone, lb-daemon takes the VIP.
    seg.wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("n2 (lb-daemon) alone is master");
    seg.nodes[0]
        .start_keepalived(&conf)
        .expect("start keepalived on n1");
    // keepalived's higher priority preempts.
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 (keepalived) preempts");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(seg.holders(VIP), vec![0], "steady state:\n{}", seg.logs());
    // keepalived's link is cut: lb-daemon takes over within the master-down interval.
    seg.cut(0).expect("cut");
    let took = seg
        .wait_holder(VIP, 1, Duration::from_secs(8))
        .expect("n2 takes over");
    assert!(took <= Duration::from_millis(5000), "took {took:?}");
    // Back: keepalived preempts again.
    seg.restore(0).expect("restore");
    seg.wait_holder(VIP, 0, Duration::from_secs(10))
        .expect("n1 preempts back");
    // keepalived stops gracefully (priority 0): lb-daemon answers at once.
    seg.nodes[0].stop().expect("stop keepalived");
    seg.wait_holder(VIP, 1, Duration::from_secs(5))
        .expect("n2 after keepalived's graceful stop");
}
