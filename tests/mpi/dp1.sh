#!/bin/bash
. "$(dirname "$0")/lib.sh"
case_dp
finish
