//! The Sparkplug B sink (`[sparkplug]`): the gateway as one edge node, each machine a device,
//! on its own broker connection beside `[mqtt]` or instead of it.
//!
//! - [`spec`]: what the node announces, from the configuration (pure);
//! - [`session`]: the broker connections over time (will, births, rebirth, outage, clean stop).
//!
//! The rules (topics, payloads, `seq`, `bdSeq`, aliases, report by exception) are
//! `shopfloor_contract::sparkplug::node`'s; this sink only moves its messages. The
//! specification's statements for an edge node, each with its test, are in `conformance.md`
//! beside this file.

pub mod session;
pub mod spec;

use crate::config::SparkplugConfig;
use crate::runtime::StartError;
use crate::sink::intake::{Bound, Intake};
use crate::sink::mqtt::MqttError;
use crate::sink::{Sink, SinkContext, SinkStats, SinkTask};
use rumqttc::MqttOptions;
use shopfloor_contract::sparkplug::{Node, state_topic};

use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// Makes the sink when `[sparkplug]` is set.
pub fn build(
    ctx: &SinkContext<'_>,
    stats: Arc<SinkStats>,
) -> Result<Option<Box<dyn Sink>>, StartError> {
    let Some(cfg) = &ctx.config.sparkplug else {
        return Ok(None);
    };
    let node = Node::new(spec::node(ctx.config, cfg, ctx.catalog));
    // What waits for it and what it keeps through an outage: one bound, one policy.
    let bound = ctx.bound(cfg.when_full);
    let brokers = cfg
        .urls
        .iter()
        .map(|url| broker(cfg, url, &ctx.config.gateway.name))
        .collect::<Result<Vec<_>, MqttError>>()?;
    info!(
        group = %cfg.group_id,
        edge_node = %cfg.edge_node_id,
        brokers = brokers.len(),
        primary_host = cfg.primary_host_id.as_deref().unwrap_or("-"),
        "publishing as a Sparkplug B edge node"
    );
    Ok(Some(Box::new(SparkplugSink {
        session: session::Session {
            node,
            brokers,
            ncmd: format!(
                "{}/{}/NCMD/{}",
                shopfloor_contract::sparkplug::NAMESPACE,
                cfg.group_id,
                cfg.edge_node_id
            ),
            host_id: cfg.primary_host_id.clone(),
            state: cfg.primary_host_id.as_deref().map(state_topic),
            keep: bound,
            stats,
            learner: spec::Learner {
                catalog: Arc::clone(ctx.shared),
                applied: Arc::clone(ctx.applied),
            },
        },
        bound,
    })))
}

/// One broker's connection settings (the will is set per connection).
fn broker(
    cfg: &SparkplugConfig,
    url: &crate::config::Url,
    gateway: &str,
) -> Result<MqttOptions, MqttError> {
    let settings = cfg
        .auth
        .session(url, format!("shopfloor-spb-{gateway}"), 16 << 20)?;
    let mut options = shopfloor_mqtt::session::options(settings)?;
    options.set_clean_session(true);
    Ok(options)
}

#[derive(Debug)]
struct SparkplugSink {
    session: session::Session,
    bound: Bound,
}

impl Sink for SparkplugSink {
    fn name(&self) -> &'static str {
        "sparkplug"
    }

    fn bound(&self) -> Bound {
        self.bound
    }

    fn run(self: Box<Self>, input: Intake, budget: Duration) -> SinkTask {
        Box::pin(self.session.run(input, budget))
    }
}
