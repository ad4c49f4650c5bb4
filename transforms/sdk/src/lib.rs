#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
// The README's plugin has a `#[cfg(test)]` module, as a real plugin would; the doctest
// skips it, and tests/readme_example.rs runs it.
#![allow(clippy::test_attr_in_doctest)]

mod error;
mod event;
pub mod log;
pub mod money;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use error::{Error, ErrorKind};
pub use event::{
    CAUSATION_EXTENSION, Event, EventBuilder, ExtensionValue, JSON, PROPAGATED_EXTENSIONS,
    is_json_media_type,
};
pub use money::Money;
/// The `serde_json` the SDK uses, for plugins that want `json!` without their own dependency.
pub use serde_json;

/// The bindings `wit-bindgen` generates from `transforms/wit` (world `transform`). Plugins
/// do not use them directly: [`export!`] and [`Event`] wrap them.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "transform",
        pub_export_macro: true,
        export_macro_name: "__export_transform",
        default_bindings_module: "civicbus_transform_sdk::bindings",
    });
}

/// A transform plugin: made once per instance from its configuration, then asked to map
/// events one at a time.
///
/// Keep `transform` a function of the event and the configuration alone: the host may
/// create and drop instances at any time (after a trap, to scale, on a new plugin version),
/// so state kept between calls is lost without notice, and the same event may be delivered
/// again, when it must give the same output (same ids) again.
///
/// Export the type with [`export!`].
pub trait Transform: Sized + 'static {
    /// Build the plugin from the subscription's static configuration (JSON text, `{}` when
    /// none; [`parse_config`] reads it). An error refuses the plugin: the subscription does
    /// not start, and the message tells the operator why.
    fn init(config: &str) -> Result<Self, String>;

    /// Map one event to zero or more events. Zero filters the event out; an [`Error`] is
    /// terminal (the event is dead-lettered) or retryable (the delivery is retried).
    fn transform(&self, input: Event) -> Result<Vec<Event>, Error>;
}

/// Export a [`Transform`] as the plugin's implementation of the `transformer` interface.
///
/// Use it once, in the plugin crate's `lib.rs`:
///
/// ```
/// use civicbus_transform_sdk::{Error, Event, Transform};
///
/// struct Passthrough;
///
/// impl Transform for Passthrough {
///     fn init(_config: &str) -> Result<Self, String> {
///         Ok(Passthrough)
///     }
///     fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
///         Ok(vec![input])
///     }
/// }
///
/// civicbus_transform_sdk::export!(Passthrough);
/// ```
///
/// On `wasm32` this emits the component's exports; natively it only checks that the type
/// implements [`Transform`], so plugin crates build and test on the host as well.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            #[allow(dead_code)]
            struct __CivicbusTransformExport;

            impl $crate::bindings::exports::civicbus::transform::transformer::Guest
                for __CivicbusTransformExport
            {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$plugin>(config)
                }

                fn transform(
                    input: $crate::__private::WitEvent,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::__private::WitEvent>,
                    $crate::__private::WitError,
                > {
                    $crate::__private::transform::<$plugin>(input)
                }
            }

            #[cfg(target_arch = "wasm32")]
            $crate::bindings::__export_transform!(__CivicbusTransformExport with_types_in $crate::bindings);
        };
    };
}

/// Call `plugin` as the host would: [`Transform::transform`], then check every output
/// with [`Event::validate`] (an invalid output turns into a terminal error naming it).
/// Native tests use it to exercise exactly what the exported component does.
pub fn run<T: Transform>(plugin: &T, input: Event) -> Result<Vec<Event>, Error> {
    let outputs = plugin.transform(input)?;
    for out in &outputs {
        out.validate()?;
    }
    Ok(outputs)
}

/// Read a plugin's JSON configuration into `C`; empty text counts as `{}`. The error
/// names the setting at fault, for [`Transform::init`] to return.
///
/// ```
/// #[derive(serde::Deserialize, Default)]
/// #[serde(deny_unknown_fields)]
/// struct Config {
///     #[serde(default)]
///     municipality: Option<String>,
/// }
/// let c: Config = civicbus_transform_sdk::parse_config("{\"municipality\": \"dysart\"}").unwrap();
/// assert_eq!(c.municipality.as_deref(), Some("dysart"));
/// assert!(civicbus_transform_sdk::parse_config::<Config>("").unwrap().municipality.is_none());
/// let err = civicbus_transform_sdk::parse_config::<Config>("{\"municipalty\": 1}").err().unwrap();
/// assert_eq!(err, "configuration: municipalty: unknown field `municipalty`, expected `municipality`");
/// ```
pub fn parse_config<C: serde::de::DeserializeOwned>(config: &str) -> Result<C, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = event::without_position(&e.into_inner());
        if path == "." {
            format!("configuration: {inner}")
        } else {
            format!("configuration: {path}: {inner}")
        }
    })
}

/// The `$id` of a civicbus catalogue schema (`schemas/<domain>/<type>.v<major>.json`),
/// for [`EventBuilder::dataschema`].
///
/// ```
/// assert_eq!(
///     civicbus_transform_sdk::catalogue_schema("ca.haliburton.finance.journal.posted", 1),
///     "https://civicbus.haliburton.ca/schemas/ca.haliburton.finance.journal.posted/v1",
/// );
/// ```
pub fn catalogue_schema(ty: &str, major: u32) -> String {
    format!("https://civicbus.haliburton.ca/schemas/{ty}/v{major}")
}

/// What [`export!`] expands to calls these; not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::any::Any;
    use std::cell::RefCell;

    use crate::bindings::civicbus::transform::types as wit;
    use crate::{Error, ErrorKind, Event, ExtensionValue, Transform};

    pub use wit::{Event as WitEvent, TransformError as WitError};

    thread_local! {
        static PLUGIN: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    pub fn init<T: Transform>(config: String) -> Result<(), String> {
        let plugin = T::init(&config)?;
        PLUGIN.with(|p| *p.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    pub fn transform<T: Transform>(input: WitEvent) -> Result<Vec<WitEvent>, WitError> {
        let input = from_wit(input);
        PLUGIN
            .with(|p| {
                let p = p.borrow();
                let plugin = p
                    .as_ref()
                    .and_then(|b| b.downcast_ref::<T>())
                    .ok_or_else(|| Error::terminal("transform called before init"))?;
                crate::run(plugin, input)
            })
            .map(|outs| outs.into_iter().map(to_wit).collect())
            .map_err(|e| WitError {
                kind: match e.kind() {
                    ErrorKind::Terminal => wit::ErrorKind::Terminal,
                    ErrorKind::Retryable => wit::ErrorKind::Retryable,
                },
                message: e.message().to_string(),
            })
    }

    fn from_wit(e: WitEvent) -> Event {
        Event {
            id: e.id,
            source: e.source,
            ty: e.type_,
            subject: e.subject,
            time: e.time,
            datacontenttype: e.datacontenttype,
            dataschema: e.dataschema,
            extensions: e
                .extensions
                .into_iter()
                .map(|x| {
                    let v = match x.value {
                        wit::ExtensionValue::Boolean(b) => ExtensionValue::Boolean(b),
                        wit::ExtensionValue::Integer(i) => ExtensionValue::Integer(i),
                        wit::ExtensionValue::Text(s) => ExtensionValue::Text(s),
                    };
                    (x.name, v)
                })
                .collect(),
            data: e.data,
        }
    }

    fn to_wit(e: Event) -> WitEvent {
        WitEvent {
            id: e.id,
            source: e.source,
            type_: e.ty,
            subject: e.subject,
            time: e.time,
            datacontenttype: e.datacontenttype,
            dataschema: e.dataschema,
            extensions: e
                .extensions
                .into_iter()
                .map(|(name, v)| wit::Extension {
                    name,
                    value: match v {
                        ExtensionValue::Boolean(b) => wit::ExtensionValue::Boolean(b),
                        ExtensionValue::Integer(i) => wit::ExtensionValue::Integer(i),
                        ExtensionValue::Text(s) => wit::ExtensionValue::Text(s),
                    },
                })
                .collect(),
            data: e.data,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        struct Upper;
        impl Transform for Upper {
            fn init(config: &str) -> Result<Self, String> {
                if config.contains("refuse") {
                    Err("refused".into())
                } else {
                    Ok(Upper)
                }
            }
            fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
                match input.ty.as_str() {
                    "bad" => Ok(vec![
                        Event::derive(&input, "x").extension("Bad", "v").build(),
                    ]),
                    "retry" => Err(Error::retryable("later")),
                    _ => Ok(vec![Event::derive(&input, input.ty.to_uppercase()).build()]),
                }
            }
        }

        fn wit_input(ty: &str) -> WitEvent {
            to_wit(
                Event::new("1", "/s", ty)
                    .with_extension("traceparent", "tp")
                    .with_extension("n", 7),
            )
        }

        #[test]
        fn the_export_layer_converts_and_validates() {
            assert_eq!(init::<Upper>("refuse".into()), Err("refused".to_string()));
            PLUGIN.with(|p| *p.borrow_mut() = None);
            let err = transform::<Upper>(wit_input("a")).expect_err("not initialised");
            assert_eq!(err.message, "transform called before init");
            init::<Upper>("{}".into()).expect("init");
            let out = transform::<Upper>(wit_input("a.b")).expect("ok");
            assert_eq!(out.len(), 1);
            let out = from_wit(out.into_iter().next().expect("one"));
            assert_eq!(out.ty, "A.B");
            assert_eq!(out.causationid(), Some("1"));
            assert_eq!(out.traceparent(), Some("tp"));
            let err = transform::<Upper>(wit_input("bad")).expect_err("invalid output");
            assert!(matches!(err.kind, wit::ErrorKind::Terminal));
            assert!(err.message.contains("`Bad`"), "{}", err.message);
            let err = transform::<Upper>(wit_input("retry")).expect_err("retry");
            assert!(matches!(err.kind, wit::ErrorKind::Retryable));
            let round = from_wit(wit_input("z"));
            assert_eq!(round.extension("n"), Some(&ExtensionValue::Integer(7)));
        }
    }
}
