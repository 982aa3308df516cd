export { AzureEmulator, type EmulatorOptions, type CallCounts, type OperationRecord } from './server.js';
export { EmulatorState, scaleSetComputerName, type IpChangeEvent, type IpOwner, type Nic, type IpConfig } from './state.js';
export { loadScenario, readScenario, scenarioSchema, type Scenario, type ScenarioInput, type ScenarioNode, type ScenarioResult } from './scenario.js';
export { defaultConfig, configPatchSchema, faultSchema, type EmulatorConfig, type EmulatorConfigPatch, type FaultRule, type FaultRuleInput } from './config.js';
export { AzureError, IP_CONFIG_LIMIT_CODE } from './errors.js';
export { AddressPool, parseIPv4, formatIPv4, parseCidr } from './address-pool.js';
export { TokenBucket, ARM_DEFAULT_LIMITS } from './throttle.js';
export { generateSelfSignedCert, type TlsMaterial } from './tls.js';
export { EmulatorCredential, emulatorClientOptions, createNetworkClient, createComputeClient, type EmulatorEndpoint, type TestRetryOptions } from './sdk.js';
