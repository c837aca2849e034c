//! The company's skill library and work types, managed through the REST API and the CLI.
//! Employees may only carry skills from the library; timesheet entries name work types.

use serde::Deserialize;

use crate::error::ApiError;
use crate::store::{Store, StoreError, WorkType};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkTypeInput {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub billable: bool,
    #[serde(default)]
    pub requires_work_order: bool,
    #[serde(default = "one")]
    pub multiplier: f64,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default = "yes")]
    pub active: bool,
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

pub fn check_skill_names(names: &[String]) -> Result<Vec<String>, ApiError> {
    let cleaned: Vec<String> = names.iter().map(|n| n.trim().to_string()).collect();
    if cleaned.is_empty()
        || cleaned
            .iter()
            .any(|n| n.is_empty() || n.chars().count() > 100)
    {
        return Err(ApiError::bad_request(
            "invalid_skill",
            "skill names must be 1 to 100 characters",
        ));
    }
    Ok(cleaned)
}

pub fn check_work_type(input: WorkTypeInput) -> Result<WorkType, ApiError> {
    let code = input.code.trim().to_ascii_uppercase();
    if code.is_empty() || code.len() > 20 {
        return Err(ApiError::bad_request(
            "invalid_work_type",
            "code must be 1 to 20 characters",
        ));
    }
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "invalid_work_type",
            "name must be 1 to 100 characters",
        ));
    }
    if !(input.multiplier > 0.0 && input.multiplier.is_finite()) {
        return Err(ApiError::bad_request(
            "invalid_work_type",
            "multiplier must be positive",
        ));
    }
    Ok(WorkType {
        code,
        name,
        billable: input.billable,
        requires_work_order: input.requires_work_order,
        multiplier: input.multiplier,
        is_default: input.is_default,
        active: input.active,
    })
}

/// Adds skills to a company's library; returns how many were new.
pub async fn add_skills(
    store: &Store,
    company_id: &str,
    names: Vec<String>,
) -> Result<usize, StoreError> {
    let company = company_id.to_string();
    store
        .write(move |tx| tx.add_skills(&company, &names, crate::clock::now_secs()))
        .await
}

pub async fn save_work_type(
    store: &Store,
    company_id: &str,
    work_type: WorkType,
) -> Result<(), StoreError> {
    let company = company_id.to_string();
    store
        .write(move |tx| {
            tx.ensure_work_types(&company)?;
            tx.upsert_work_type(&company, &work_type)
        })
        .await
}
