//! A trail's event selectors in a form cloudwarden can keep (for undo) and
//! reason about: whether they record management events of both kinds, and
//! the smallest change that makes them.

use serde::{Deserialize, Serialize};

/// A trail's selectors: basic or advanced (a trail has one kind).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selectors {
    /// Basic event selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basic: Vec<Basic>,
    /// Advanced event selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advanced: Vec<Advanced>,
}

/// One basic event selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basic {
    /// `ReadOnly`, `WriteOnly` or `All`.
    pub read_write_type: Option<String>,
    /// Whether it includes management events.
    pub include_management_events: Option<bool>,
    /// Data resources: (type, values).
    pub data_resources: Vec<(String, Vec<String>)>,
    /// Event sources left out of management events.
    pub exclude_management_event_sources: Vec<String>,
}

/// One advanced event selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advanced {
    /// Its name.
    pub name: Option<String>,
    /// Field selectors: field and its conditions.
    pub fields: Vec<Field>,
}

/// One advanced field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The field, such as `eventCategory`.
    pub field: String,
    /// Conditions.
    pub equals: Vec<String>,
    /// See `equals`.
    pub starts_with: Vec<String>,
    /// See `equals`.
    pub ends_with: Vec<String>,
    /// See `equals`.
    pub not_equals: Vec<String>,
    /// See `equals`.
    pub not_starts_with: Vec<String>,
    /// See `equals`.
    pub not_ends_with: Vec<String>,
}

impl Selectors {
    /// Whether management events that read and that write are recorded,
    /// with no event source left out.
    pub fn records_management(&self) -> bool {
        let (mut read, mut write) = (false, false);
        for b in &self.basic {
            if b.include_management_events != Some(false)
                && b.exclude_management_event_sources.is_empty()
            {
                match b.read_write_type.as_deref() {
                    Some("ReadOnly") => read = true,
                    Some("WriteOnly") => write = true,
                    _ => (read, write) = (true, true),
                }
            }
        }
        for a in &self.advanced {
            let management = a
                .fields
                .iter()
                .any(|f| f.field == "eventCategory" && f.equals.iter().any(|v| v == "Management"));
            // Any other condition narrows it (an event source left out).
            let narrowed = a
                .fields
                .iter()
                .any(|f| f.field != "eventCategory" && f.field != "readOnly");
            if !management || narrowed {
                continue;
            }
            match a
                .fields
                .iter()
                .find(|f| f.field == "readOnly")
                .and_then(|f| f.equals.first())
                .map(String::as_str)
            {
                Some("true") => read = true,
                Some("false") => write = true,
                _ => (read, write) = (true, true),
            }
        }
        read && write
    }

    /// The selectors with management events of both kinds recorded again,
    /// data event selectors kept as they are.
    pub fn with_management(&self) -> Selectors {
        let mut out = self.clone();
        if !out.advanced.is_empty() {
            out.advanced.push(Advanced {
                name: Some("Management events (put back by cloudwarden)".to_owned()),
                fields: vec![Field {
                    field: "eventCategory".to_owned(),
                    equals: vec!["Management".to_owned()],
                    ..Field::default()
                }],
            });
            return out;
        }
        let mut found = false;
        for b in &mut out.basic {
            if b.include_management_events != Some(false) {
                b.read_write_type = Some("All".to_owned());
                b.exclude_management_event_sources.clear();
                found = true;
            }
        }
        if !found {
            match out.basic.first_mut() {
                Some(first) => {
                    first.include_management_events = Some(true);
                    first.read_write_type = Some("All".to_owned());
                }
                None => out.basic.push(Basic {
                    read_write_type: Some("All".to_owned()),
                    include_management_events: Some(true),
                    ..Basic::default()
                }),
            }
        }
        out
    }
}

impl From<&aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput>
    for Selectors
{
    fn from(
        out: &aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput,
    ) -> Selectors {
        let strings = |v: &[String]| v.to_vec();
        Selectors {
            basic: out
                .event_selectors()
                .iter()
                .map(|s| Basic {
                    read_write_type: s.read_write_type().map(|t| t.as_str().to_owned()),
                    include_management_events: s.include_management_events(),
                    data_resources: s
                        .data_resources()
                        .iter()
                        .map(|d| {
                            (
                                d.r#type().unwrap_or_default().to_owned(),
                                strings(d.values()),
                            )
                        })
                        .collect(),
                    exclude_management_event_sources: strings(s.exclude_management_event_sources()),
                })
                .collect(),
            advanced: out
                .advanced_event_selectors()
                .iter()
                .map(|a| Advanced {
                    name: a.name().map(str::to_owned),
                    fields: a
                        .field_selectors()
                        .iter()
                        .map(|f| Field {
                            field: f.field().to_owned(),
                            equals: strings(f.equals()),
                            starts_with: strings(f.starts_with()),
                            ends_with: strings(f.ends_with()),
                            not_equals: strings(f.not_equals()),
                            not_starts_with: strings(f.not_starts_with()),
                            not_ends_with: strings(f.not_ends_with()),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl Selectors {
    /// The SDK's basic selectors.
    pub fn sdk_basic(&self) -> Vec<aws_sdk_cloudtrail::types::EventSelector> {
        use aws_sdk_cloudtrail::types::{DataResource, EventSelector, ReadWriteType};
        self.basic
            .iter()
            .map(|b| {
                EventSelector::builder()
                    .set_read_write_type(b.read_write_type.as_deref().map(ReadWriteType::from))
                    .set_include_management_events(b.include_management_events)
                    .set_data_resources(Some(
                        b.data_resources
                            .iter()
                            .map(|(t, v)| {
                                DataResource::builder()
                                    .r#type(t)
                                    .set_values(Some(v.clone()))
                                    .build()
                            })
                            .collect(),
                    ))
                    .set_exclude_management_event_sources(Some(
                        b.exclude_management_event_sources.clone(),
                    ))
                    .build()
            })
            .collect()
    }

    /// The SDK's advanced selectors; `Err` when one cannot be built.
    pub fn sdk_advanced(
        &self,
    ) -> Result<Vec<aws_sdk_cloudtrail::types::AdvancedEventSelector>, String> {
        use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector};
        self.advanced
            .iter()
            .map(|a| {
                let fields = a
                    .fields
                    .iter()
                    .map(|f| {
                        AdvancedFieldSelector::builder()
                            .field(&f.field)
                            .set_equals(Some(f.equals.clone()))
                            .set_starts_with(Some(f.starts_with.clone()))
                            .set_ends_with(Some(f.ends_with.clone()))
                            .set_not_equals(Some(f.not_equals.clone()))
                            .set_not_starts_with(Some(f.not_starts_with.clone()))
                            .set_not_ends_with(Some(f.not_ends_with.clone()))
                            .build()
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                AdvancedEventSelector::builder()
                    .set_name(a.name.clone())
                    .set_field_selectors(Some(fields))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(rw: &str, management: bool) -> Basic {
        Basic {
            read_write_type: Some(rw.to_owned()),
            include_management_events: Some(management),
            ..Basic::default()
        }
    }

    #[test]
    fn narrowed_selectors_are_widened_to_management_of_both_kinds_keeping_data_events() {
        let narrowed = Selectors {
            basic: vec![basic("WriteOnly", true)],
            advanced: vec![],
        };
        assert!(!narrowed.records_management());
        let widened = narrowed.with_management();
        assert!(widened.records_management());
        assert_eq!(widened.basic.len(), 1);
        let mut data = basic("All", false);
        data.data_resources = vec![(
            "AWS::S3::Object".to_owned(),
            vec!["arn:aws:s3:::b/".to_owned()],
        )];
        let only_data = Selectors {
            basic: vec![data],
            advanced: vec![],
        };
        let widened = only_data.with_management();
        assert!(widened.records_management());
        assert_eq!(widened.basic[0].data_resources.len(), 1, "data events kept");
        let excluded = Selectors {
            basic: vec![Basic {
                exclude_management_event_sources: vec!["kms.amazonaws.com".to_owned()],
                ..basic("All", true)
            }],
            advanced: vec![],
        };
        assert!(
            !excluded.records_management(),
            "an excluded source narrows it"
        );
        assert!(excluded.with_management().records_management());
        let advanced = Selectors {
            basic: vec![],
            advanced: vec![Advanced {
                name: None,
                fields: vec![
                    Field {
                        field: "eventCategory".to_owned(),
                        equals: vec!["Management".to_owned()],
                        ..Field::default()
                    },
                    Field {
                        field: "readOnly".to_owned(),
                        equals: vec!["true".to_owned()],
                        ..Field::default()
                    },
                ],
            }],
        };
        assert!(!advanced.records_management());
        assert!(advanced.with_management().records_management());
        assert!(
            Selectors {
                basic: vec![basic("All", true)],
                advanced: vec![]
            }
            .records_management()
        );
    }
}
