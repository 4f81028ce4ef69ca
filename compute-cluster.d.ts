import { ComputeClusterConstructor } from './index';

declare const ComputeCluster: ComputeClusterConstructor;
export = ComputeCluster;
