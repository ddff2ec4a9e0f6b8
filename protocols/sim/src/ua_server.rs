//! Serves a simulated CNC or moulding machine over OPC UA (async-opcua server), ticking its
//! model in real time: a browsable machine object with the folders of [`crate::ua_profile`],
//! typed variables with EngineeringUnits and source timestamps, and endpoints for no security
//! and for the signed and encrypted policies.

use crate::model::{Model, SimKind};
use crate::server::{SimMachine, tick_in_real_time};
use crate::ua_profile::{UaNode, UaType, namespace_uri, ua_profile};
use opcua::crypto::SecurityPolicy;
use opcua::server::address_space::{AddressSpace, Variable, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerEndpoint, ServerUserToken};
use opcua::types::{
    DataTypeId, DataValue, EUInformation, ExtensionObject, LocalizedText, MessageSecurityMode,
    NodeId, UAString, VariableTypeId, Variant,
};
use shopfloor_core::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How an OPC UA simulated machine lets clients in.
#[derive(Clone, Debug)]
pub struct UaOptions {
    /// The server's own certificate, and the client certificates it trusts (`trusted/`).
    pub pki_dir: PathBuf,
    /// Trust any client certificate (the demo), or only those in `pki_dir/trusted`.
    pub trust_client_certs: bool,
    /// Offer no endpoint without security.
    pub secure_only: bool,
    /// User names and passwords; when empty, anonymous clients are let in.
    pub users: Vec<(String, String)>,
}

/// The server could not start.
#[derive(Debug, Error)]
pub enum UaServeError {
    /// This kind has no OPC UA node list.
    #[error("the simulated {0} is served over Modbus only")]
    NotOpcua(SimKind),
    /// The server could not be built.
    #[error("OPC UA server: {0}")]
    Build(String),
}

fn variant(node: &UaNode, value: &Value) -> Variant {
    let f = value.as_f64();
    match (node.ua_type, value) {
        (UaType::String, Value::Text(t)) => Variant::String(UAString::from(t.as_str())),
        (UaType::Boolean, Value::Bool(b)) => Variant::Boolean(*b),
        (UaType::Boolean, _) => Variant::Boolean(f.is_some_and(|x| x != 0.0)),
        // Saturating casts: the model keeps its values in range, the cast keeps it certain.
        (UaType::UInt16, _) => Variant::UInt16(f.unwrap_or(0.0) as u16),
        (UaType::Int16, _) => Variant::Int16(f.unwrap_or(0.0) as i16),
        (UaType::UInt32, Value::U64(u)) => Variant::UInt32(*u as u32),
        (UaType::UInt32, _) => Variant::UInt32(f.unwrap_or(0.0) as u32),
        (UaType::Int32, _) => Variant::Int32(f.unwrap_or(0.0) as i32),
        (UaType::Float, _) => Variant::Float(f.unwrap_or(0.0) as f32),
        (UaType::Double, _) => Variant::Double(f.unwrap_or(0.0)),
        (UaType::String, v) => Variant::String(UAString::from(format!("{v:?}"))),
    }
}

fn data_type(t: UaType) -> DataTypeId {
    match t {
        UaType::Boolean => DataTypeId::Boolean,
        UaType::UInt16 => DataTypeId::UInt16,
        UaType::Int16 => DataTypeId::Int16,
        UaType::UInt32 => DataTypeId::UInt32,
        UaType::Int32 => DataTypeId::Int32,
        UaType::Float => DataTypeId::Float,
        UaType::Double => DataTypeId::Double,
        UaType::String => DataTypeId::String,
    }
}

/// Builds the machine object, its folders and variables.
fn populate(
    space: &mut AddressSpace,
    ns: u16,
    kind: SimKind,
    seed: u64,
    nodes: &[UaNode],
    initial: &[Value],
) {
    let id = |path: &str| NodeId::new(ns, path.to_owned());
    let machine = id("Machine");
    let title = match kind {
        SimKind::Cnc => "CNC machining centre (simulated)",
        SimKind::InjectionMoulding => "Injection-moulding machine (simulated)",
        SimKind::EnergyMeter => "Energy meter (simulated)",
    };
    space.add_folder(&machine, "Machine", title, &NodeId::objects_folder_id());
    let identification = id("Identification");
    space.add_folder(
        &identification,
        "Identification",
        "Identification",
        &machine,
    );
    let _ = space.add_variables(
        vec![
            Variable::new(
                &id("Identification.Manufacturer"),
                "Manufacturer",
                "Manufacturer",
                "IQ BLVD fieldlab",
            ),
            Variable::new(&id("Identification.Model"), "Model", "Model", title),
            Variable::new(
                &id("Identification.SerialNumber"),
                "SerialNumber",
                "SerialNumber",
                format!("SIM-{:08X}", seed as u32),
            ),
        ],
        &identification,
    );
    let mut folders = BTreeSet::new();
    for n in nodes {
        let parts: Vec<&str> = n.path.split('.').collect();
        let mut parent = machine.clone();
        for depth in 1..parts.len() {
            let path = parts[..depth].join(".");
            let folder = id(&path);
            if folders.insert(path.clone()) {
                let name = parts[depth - 1];
                space.add_folder(&folder, name, name, &parent);
            }
            parent = folder;
        }
        let name = parts[parts.len() - 1];
        let var_id = id(n.path);
        let first = initial.get(n.index).unwrap_or(&Value::Null);
        let mut v = Variable::new(&var_id, name, name, variant(n, first));
        v.set_data_type(data_type(n.ua_type));
        let _ = space.add_variables(vec![v], &parent);
        if let Some(unit) = n.unit {
            let eu = EUInformation {
                namespace_uri: "http://www.opcfoundation.org/UA/units/un/cefact".into(),
                unit_id: -1,
                display_name: LocalizedText::new("", unit),
                description: LocalizedText::new("", unit),
            };
            VariableBuilder::new(
                &id(&format!("{}.EngineeringUnits", n.path)),
                "EngineeringUnits",
                "EngineeringUnits",
            )
            .data_type(DataTypeId::EUInformation)
            .value(ExtensionObject::from_message(eu))
            .property_of(var_id.clone())
            .has_type_definition(VariableTypeId::PropertyType)
            .insert(space);
        }
    }
}

fn builder(kind: SimKind, port: u16, host: &str, opts: &UaOptions) -> ServerBuilder {
    let mut tokens = Vec::new();
    let mut b = ServerBuilder::new()
        .application_name(format!("shopfloor simulated {kind}"))
        .application_uri(format!("urn:iqblvd:sim:{kind}:server"))
        .product_uri("urn:iqblvd:shopfloor:sim")
        .create_sample_keypair(true)
        .pki_dir(opts.pki_dir.clone())
        .trust_client_certs(opts.trust_client_certs)
        .host(host)
        .port(port)
        .discovery_urls(vec!["/".to_owned()]);
    if opts.users.is_empty() {
        tokens.push(ANONYMOUS_USER_TOKEN_ID.to_owned());
    }
    for (i, (user, pass)) in opts.users.iter().enumerate() {
        let token = format!("user{i}");
        b = b.add_user_token(
            &token,
            ServerUserToken::user_pass(user.as_str(), pass.as_str()),
        );
        tokens.push(token);
    }
    if !opts.secure_only {
        b = b.add_endpoint("none", ServerEndpoint::new_none("/", &tokens));
    }
    for (name, policy, mode) in [
        (
            "basic256sha256_sign",
            SecurityPolicy::Basic256Sha256,
            MessageSecurityMode::Sign,
        ),
        (
            "basic256sha256_sign_encrypt",
            SecurityPolicy::Basic256Sha256,
            MessageSecurityMode::SignAndEncrypt,
        ),
        (
            "aes128_sign_encrypt",
            SecurityPolicy::Aes128Sha256RsaOaep,
            MessageSecurityMode::SignAndEncrypt,
        ),
        (
            "aes256_sign_encrypt",
            SecurityPolicy::Aes256Sha256RsaPss,
            MessageSecurityMode::SignAndEncrypt,
        ),
    ] {
        b = b.add_endpoint(name, ServerEndpoint::new("/", policy, mode, &tokens));
    }
    b
}

/// Serves `machine` over OPC UA on `listener` until `shutdown` is cancelled.
pub async fn serve_opcua(
    listener: TcpListener,
    machine: SimMachine,
    opts: UaOptions,
    shutdown: CancellationToken,
) -> Result<(), UaServeError> {
    let nodes = ua_profile(machine.kind);
    if nodes.is_empty() {
        return Err(UaServeError::NotOpcua(machine.kind));
    }
    let local = listener
        .local_addr()
        .map_err(|e| UaServeError::Build(e.to_string()))?;
    let uri = namespace_uri(machine.kind);
    let (server, handle) = builder(machine.kind, local.port(), &local.ip().to_string(), &opts)
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: uri.clone(),
                ..Default::default()
            },
            "simulated machine",
        ))
        .build()
        .map_err(UaServeError::Build)?;
    let manager = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or_else(|| UaServeError::Build("no node manager".into()))?;
    let ns = handle
        .get_namespace_index(&uri)
        .ok_or_else(|| UaServeError::Build(format!("namespace {uri} missing")))?;
    let model: Box<dyn Model> = machine.kind.build(machine.seed);
    populate(
        &mut manager.address_space().write(),
        ns,
        machine.kind,
        machine.seed,
        &nodes,
        &model.values(),
    );
    let ids: Vec<NodeId> = nodes
        .iter()
        .map(|n| NodeId::new(ns, n.path.to_owned()))
        .collect();
    let subscriptions = handle.subscriptions().clone();
    let ticker = tick_in_real_time(model, machine.speedup, move |values| {
        let updates = nodes.iter().zip(&ids).map(|(n, id)| {
            let v = values.get(n.index).unwrap_or(&Value::Null);
            (id, None, DataValue::new_now(variant(n, v)))
        });
        if let Err(e) = manager.set_values(&subscriptions, updates) {
            warn!(error = %e, "simulated OPC UA machine: values not set");
        }
    });
    let stopper = handle.clone();
    tokio::select! {
        r = server.run_with(listener) => r.map_err(UaServeError::Build),
        _ = ticker => Ok(()),
        _ = shutdown.cancelled() => {
            stopper.cancel();
            Ok(())
        }
    }
}
