//! What the registry's lines make (`mechanisms!`, used once, in `attention/mod.rs`): the
//! enums that name a mechanism, hold its settings and hold its layer, the list of models,
//! and the dispatch from each enum to the settings type of its line.

/// `mechanisms! { Name = "name in configurations" => SettingsType, ... }` makes
/// [`Mechanism`](super::Mechanism), [`MechanismSettings`](super::MechanismSettings) (with
/// its JSON form: `"attention": {"local": {"block_size": 50}}`, or the name alone for
/// settings without fields), [`Attention`](super::Attention) and
/// [`MODELS`](crate::MODELS), in the lines' order. `MODELS` holds the invoking module's
/// [`ModelInfo`](super::ModelInfo), named as the call site names it (as the enums the
/// macro makes are).
macro_rules! mechanisms {
    ($($name:ident = $tag:literal => $settings:ty,)*) => {
        /// Which mechanism an attention layer computes (its settings type says what it is).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum Mechanism {
            $(
                #[doc = concat!("See [`", stringify!($settings), "`].")]
                #[serde(rename = $tag)]
                $name,
            )*
        }

        /// A mechanism and its own settings. In a configuration file:
        /// `"attention": {"local": {"block_size": 50}}`, or `"attention": "full"` for a
        /// mechanism without settings. Unknown fields are refused.
        #[derive(Debug, Clone, PartialEq)]
        pub enum MechanismSettings {
            $(
                #[doc = concat!("See [`", stringify!($settings), "`].")]
                $name($settings),
            )*
        }

        /// An attention layer of any mechanism.
        // Variants differ in size (a device handle per parameter grows with the GPU
        // backends built in); a model holds one per layer, so boxing the large ones would
        // save nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(burn::module::Module, Debug)]
        pub enum Attention {
            $($name(<$settings as $crate::attention::Settings>::Layer),)*
        }

        /// Every model, in the order the harness lists and sweeps them.
        pub const MODELS: &[ModelInfo] = &[
            $(
                ModelInfo {
                    name: <$settings as $crate::attention::Settings>::MODEL.name,
                    title: <$settings as $crate::attention::Settings>::MODEL.title,
                    family: <$settings as $crate::attention::Settings>::MODEL.family,
                    cost: <$settings as $crate::attention::Settings>::MODEL.cost,
                    mechanism: Mechanism::$name,
                },
            )*
        ];

        /// Each mechanism's name in configurations, in the registry's order.
        const MECHANISM_NAMES: &[&str] = &[$($tag,)*];

        impl Mechanism {
            /// What this mechanism's `lra` variant computes differently from its paper, in
            /// one line ([`Settings::LRA_VARIANT`](super::Settings::LRA_VARIANT)).
            pub fn lra_variant(self) -> Option<&'static str> {
                match self {
                    $(Mechanism::$name => <$settings as $crate::attention::Settings>::LRA_VARIANT,)*
                }
            }

            /// Where the model differs from the Transformer outside its attention layer
            /// ([`Settings::CHANGE_OUTSIDE_ATTENTION`](super::Settings::CHANGE_OUTSIDE_ATTENTION)).
            pub fn change_outside_attention(self) -> Option<&'static str> {
                match self {
                    $(Mechanism::$name => <$settings as $crate::attention::Settings>::CHANGE_OUTSIDE_ATTENTION,)*
                }
            }

            /// Whether the model's blocks attend
            /// ([`Settings::ATTENDS`](super::Settings::ATTENDS)): all but the control's.
            pub fn attends(self) -> bool {
                match self {
                    $(Mechanism::$name => <$settings as $crate::attention::Settings>::ATTENDS,)*
                }
            }
        }

        impl MechanismSettings {
            /// The settings of `mechanism` for sequences of up to `max_length` positions
            /// (CLS included): its file's defaults, with the ones derived from the length
            /// resolved to numbers.
            pub fn defaults(mechanism: Mechanism, max_length: usize) -> MechanismSettings {
                use $crate::attention::Settings;
                match mechanism {
                    $(Mechanism::$name => MechanismSettings::$name(<$settings>::defaults(max_length)),)*
                }
            }

            /// The settings of `mechanism` for a tiny classifier of `positions` positions in
            /// tests (each file's [`Settings::tiny`](super::Settings::tiny)).
            pub fn tiny(mechanism: Mechanism, positions: usize) -> MechanismSettings {
                use $crate::attention::Settings;
                match mechanism {
                    $(Mechanism::$name => MechanismSettings::$name(<$settings>::tiny(positions)),)*
                }
            }

            /// The mechanism these settings are for.
            pub fn mechanism(&self) -> Mechanism {
                match self {
                    $(MechanismSettings::$name(_) => Mechanism::$name,)*
                }
            }

            /// The form these settings compute, for a mechanism that has more than one.
            pub fn variant(&self) -> Option<$crate::attention::Variant> {
                use $crate::attention::Settings;
                match self {
                    $(MechanismSettings::$name(settings) => settings.variant(),)*
                }
            }

            fn switched_to(self, variant: $crate::attention::Variant) -> Option<MechanismSettings> {
                use $crate::attention::Settings;
                match self {
                    $(MechanismSettings::$name(settings) => settings.switched_to(variant).map(MechanismSettings::$name),)*
                }
            }

            /// These settings with every length-bound one cut to `positions` where it is
            /// longer (each file's [`Settings::fitted_to`](super::Settings::fitted_to)).
            pub fn fitted_to(self, positions: usize) -> MechanismSettings {
                use $crate::attention::Settings;
                match self {
                    $(MechanismSettings::$name(settings) => MechanismSettings::$name(settings.fitted_to(positions)),)*
                }
            }

            fn scaled_only(self, scale: &$crate::attention::Scale) -> MechanismSettings {
                use $crate::attention::Settings;
                match self {
                    $(MechanismSettings::$name(settings) => MechanismSettings::$name(settings.scaled(scale)),)*
                }
            }

            /// Refuses settings that cannot work on sequences of `positions` positions (CLS
            /// included), naming the setting and the length.
            pub fn check(&self, positions: usize) -> Result<(), String> {
                use $crate::attention::Settings;
                match self {
                    $(MechanismSettings::$name(settings) => settings.check(positions),)*
                }
            }

            /// Operations of one forward of the layer ([`super::flops`]).
            pub fn forward_flops(&self, shape: &$crate::attention::flops::LayerShape) -> f64 {
                use $crate::attention::Settings;
                match self {
                    $(MechanismSettings::$name(settings) => settings.forward_flops(shape),)*
                }
            }

            /// The layer, with `layer`'s sizes.
            fn init(&self, layer: &$crate::attention::layer::LayerSizes, device: &burn::prelude::Device) -> Attention {
                use $crate::attention::Settings;
                match self {
                    $(MechanismSettings::$name(settings) => Attention::$name(settings.init(layer, device)),)*
                }
            }
        }

        impl Attention {
            fn layer(&self) -> &dyn $crate::attention::AttentionLayer {
                match self {
                    $(Attention::$name(layer) => layer,)*
                }
            }

            fn layer_mut(&mut self) -> &mut dyn $crate::attention::AttentionLayer {
                match self {
                    $(Attention::$name(layer) => layer,)*
                }
            }
        }

        impl serde::Serialize for MechanismSettings {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use $crate::attention::Settings;
                let index = self.mechanism() as u32;
                match self {
                    $(
                        MechanismSettings::$name(settings) => match <$settings>::FIELDLESS {
                            true => serializer.serialize_unit_variant("MechanismSettings", index, $tag),
                            false => serializer.serialize_newtype_variant("MechanismSettings", index, $tag, settings),
                        },
                    )*
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for MechanismSettings {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visit;

                impl<'de> serde::de::Visitor<'de> for Visit {
                    type Value = MechanismSettings;

                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a mechanism's name, or an object of one mechanism's name and its settings")
                    }

                    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<MechanismSettings, E> {
                        use $crate::attention::Settings;
                        match name {
                            $(
                                $tag if <$settings>::FIELDLESS => {
                                    let unit = serde::de::value::UnitDeserializer::<E>::new();
                                    Ok(MechanismSettings::$name(<$settings as serde::Deserialize>::deserialize(unit)?))
                                }
                            )*
                            _ if MECHANISM_NAMES.contains(&name) => {
                                Err(E::custom(format!("`{name}` has settings: write {{\"{name}\": {{...}}}}")))
                            }
                            _ => Err(E::unknown_variant(name, MECHANISM_NAMES)),
                        }
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<MechanismSettings, A::Error> {
                        use serde::de::Error;
                        let Some(name) = map.next_key::<String>()? else {
                            return Err(A::Error::custom("an empty object names no mechanism"));
                        };
                        let settings = match name.as_str() {
                            $($tag => MechanismSettings::$name(map.next_value::<$settings>()?),)*
                            _ => return Err(A::Error::unknown_variant(&name, MECHANISM_NAMES)),
                        };
                        match map.next_key::<serde::de::IgnoredAny>()? {
                            Some(_) => Err(A::Error::custom("an attention has one mechanism: the object names more")),
                            None => Ok(settings),
                        }
                    }
                }

                deserializer.deserialize_any(Visit)
            }
        }
    };
}

pub(crate) use mechanisms;
