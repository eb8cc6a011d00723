//! What the YAML looks like: serde types that mirror the files one to one.
//!
//! Every struct denies unknown fields. Scalars are read as positioned strings ([`Str`]) and parsed
//! by `convert.rs`, so that `timeout: soon` gets a message about durations with a line and column
//! rather than a generic "invalid type". Nothing outside the policy module sees these types.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::yaml::SpannedMap;

/// A scalar with its position. Numbers and booleans arrive as their text.
pub(crate) type Str = Spanned<String>;

/// A profile file, or an inline profile under `profiles:` in a policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileWire {
    /// Required in a profile file; an inline profile takes its name from its key.
    pub name: Option<Str>,
    pub description: Str,
    pub extends: Option<Str>,
    pub filesystem: Option<FilesystemWire>,
    pub network: Option<NetworkWire>,
    pub env: Option<EnvWire>,
    pub process: Option<ProcessWire>,
    pub landlock: Option<LandlockWire>,
    pub secrets: Option<SpannedMap<Spanned<Option<SecretWire>>>>,
}

/// One `secrets:` entry: `{}`, `{ optional: true }`, `{ broker: [codecov.io] }`. An empty value
/// (`NPM_TOKEN:`) means the same as `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretWire {
    pub optional: Option<Str>,
    pub broker: Option<Spanned<BrokerWire>>,
}

/// `broker: [host, ...]`, or `broker: { hosts: [host, ...], in: [header:NAME, query:NAME, body] }`.
#[derive(Debug)]
pub(crate) enum BrokerWire {
    Hosts(Vec<Str>),
    Spec(BrokerSpecWire),
    /// A scalar, which is an error `secret_decls` reports with its position.
    Scalar(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BrokerSpecWire {
    pub hosts: Option<Vec<Str>>,
    #[serde(rename = "in")]
    pub places: Option<Vec<Str>>,
}

impl<'de> Deserialize<'de> for BrokerWire {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BrokerWire;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of host names, or a mapping with hosts and in")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BrokerWire, E> {
                Ok(BrokerWire::Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<BrokerWire, E> {
                Ok(BrokerWire::Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<BrokerWire, E> {
                Ok(BrokerWire::Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<BrokerWire, E> {
                Ok(BrokerWire::Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<BrokerWire, E> {
                Ok(BrokerWire::Scalar(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, a: A) -> Result<BrokerWire, A::Error> {
                Vec::<Str>::deserialize(serde::de::value::SeqAccessDeserializer::new(a))
                    .map(BrokerWire::Hosts)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<BrokerWire, A::Error> {
                BrokerSpecWire::deserialize(serde::de::value::MapAccessDeserializer::new(a))
                    .map(BrokerWire::Spec)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesystemWire {
    pub read_write: Option<Vec<Str>>,
    pub read_only: Option<Vec<Str>>,
    pub hidden: Option<Vec<Str>>,
    /// Files written into the step's private /tmp before it starts (path -> content).
    pub files: Option<SpannedMap<Str>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkWire {
    pub mode: Option<Str>,
    pub allow: Option<Vec<Spanned<AllowWire>>>,
    /// `http://host:port` of a corporate proxy allowed connections leave through.
    pub upstream_proxy: Option<Str>,
    /// Connections the step may have open to the proxy at once.
    pub max_connections: Option<Str>,
}

/// One `network.allow` entry: `host[:port]` text, or a mapping.
#[derive(Debug)]
pub(crate) enum AllowWire {
    Text(String),
    Rule(Box<AllowRuleWire>),
}

/// `{ host: github.com, ports: [443, 80] }` or `{ cidr: 203.0.113.0/24, ports: [443] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllowRuleWire {
    pub host: Option<Str>,
    pub cidr: Option<Str>,
    pub ports: Option<Vec<Str>>,
    /// HTTP methods this host may be sent (the host's TLS is then intercepted).
    pub methods: Option<Vec<Str>>,
    /// Path prefixes this host may be sent, matched on `/` boundaries.
    pub paths: Option<Vec<Str>>,
    /// `true`: a CONNECT tunnel to this host may carry a protocol that is neither TLS nor HTTP.
    pub raw_tcp: Option<Str>,
}

impl<'de> Deserialize<'de> for AllowWire {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AllowWire;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a host like example.com:443, or a mapping with host or cidr")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AllowWire, E> {
                Ok(AllowWire::Text(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<AllowWire, A::Error> {
                AllowRuleWire::deserialize(serde::de::value::MapAccessDeserializer::new(a))
                    .map(|r| AllowWire::Rule(Box::new(r)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvWire {
    pub pass: Option<Vec<Str>>,
    pub set: Option<SpannedMap<Str>>,
    pub scrub: Option<Vec<Str>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProcessWire {
    pub timeout: Option<Str>,
    pub limits: Option<LimitsWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsWire {
    pub open_files: Option<Str>,
    pub file_size: Option<Str>,
    pub processes: Option<Str>,
    pub cpu_seconds: Option<Str>,
    pub address_space: Option<Str>,
    pub core_size: Option<Str>,
    pub memory: Option<Str>,
    pub pids: Option<Str>,
    pub cpu: Option<Str>,
    pub enforce: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LandlockWire {
    pub min_abi: Option<Str>,
}

/// A policy file (`.github/stepjail.yml`): which profile each step of each job runs under.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyWire {
    pub version: Str,
    pub default: Option<Str>,
    pub profiles: Option<SpannedMap<Spanned<ProfileWire>>>,
    pub jobs: Option<SpannedMap<JobWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobWire {
    pub steps: SpannedMap<StepWire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepWire {
    pub profile: Str,
    /// The secrets this step gets, on top of any its profile declares.
    pub secrets: Option<SpannedMap<Spanned<Option<SecretWire>>>>,
    /// Names this step may write to `$GITHUB_ENV` although they are on the dangerous list.
    pub allow_env: Option<Vec<Str>>,
}

/// Just enough of any file to tell a profile (`name:`) from a policy (`version:`).
#[derive(Debug, Deserialize)]
pub(crate) struct KindProbe {
    pub name: Option<serde::de::IgnoredAny>,
    pub version: Option<serde::de::IgnoredAny>,
}
