//! The embedded MQTT broker of `oee-stream demo`: `mqtt5`'s broker on a free loopback port,
//! in memory (no session files), run on our tokio runtime.

use std::net::SocketAddr;
use std::time::Duration;

use mqtt5::broker::{
    BrokerConfig, BrokerShutdownHandle, MqttBroker, StorageBackendType, StorageConfig,
};

/// A running broker.
pub struct Embedded {
    pub addr: SocketAddr,
    handle: BrokerShutdownHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Embedded {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> anyhow::Result<Embedded> {
        let storage = StorageConfig {
            backend: StorageBackendType::Memory,
            enable_persistence: false,
            ..StorageConfig::default()
        };
        let config = BrokerConfig::default()
            .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_storage(storage)
            .with_sys_topics_enabled(false);
        let mut broker = MqttBroker::with_config(config).await?;
        let addr = broker
            .local_addr()
            .ok_or_else(|| anyhow::anyhow!("the broker has no listening address"))?;
        let handle = broker.shutdown_handle();
        let task = tokio::spawn(async move {
            if let Err(e) = broker.run().await {
                tracing::error!("embedded MQTT broker: {e}");
            }
        });
        Ok(Embedded { addr, handle, task })
    }

    /// Stops it (bounded wait).
    pub async fn shutdown(self) {
        self.handle.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}
