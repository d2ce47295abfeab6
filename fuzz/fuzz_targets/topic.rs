//! `Topic::parse` on arbitrary strings: returns Ok or Err, never panics. A parsed message topic
//! must also rebuild to the same string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkplug::topic::{Topic, message_topic, state_topic};

fuzz_target!(|topic: &str| {
    match Topic::parse(topic) {
        Ok(Topic::Message {
            group,
            message_type,
            edge_node,
            device,
        }) => {
            assert_eq!(device.is_some(), message_type.is_device());
            assert_eq!(message_topic(group, message_type, edge_node, device), topic);
        }
        Ok(Topic::State { host_id, version }) => {
            assert!(!host_id.is_empty() && !host_id.contains(['/', '+', '#']));
            if version == sparkplug::StateVersion::V3 {
                assert_eq!(state_topic(host_id), topic);
            }
        }
        Err(_) => {}
    }
});
